"""The train entry point: one fast run per shipped experiment, outputs in the run directory,
clear errors from the command line (lightning-hydra-template tests/test_train.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from common import SAMPLE_DATA, SAMPLE_VALID, TINY_RUN

from protein_performer.cli.config import compose_train

REPO = Path(__file__).resolve().parents[2]

# a model of a few thousand parameters, two steps, two validation batches, CSV logging
TINY = [*TINY_RUN, "trainer.limit_test_batches=2", "callbacks.progress.every_n_steps=1"]


def run_train(overrides, tmp_path):
    from protein_performer.cli.train import train

    cfg = compose_train([*overrides, *TINY], output_dir=tmp_path)
    return train(cfg)


def test_default_config_one_step_with_test(tmp_path, caplog):
    caplog.set_level("INFO", logger="protein_performer.train")
    metrics = run_train([f"data.test=[{SAMPLE_VALID}]", "model.attention.nb_features=16"], tmp_path)
    # not a terminal: plain progress lines with the throughput
    lines = [r.getMessage() for r in caplog.records if r.name == "protein_performer.train"]
    assert any(m.startswith("step 2/2") and "tok/s" in m for m in lines), lines
    assert metrics, "train() returned no metrics"
    assert any(k.startswith("valid/") for k in metrics)
    assert any(k.startswith("test") for k in metrics)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved) == set(metrics)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    # the checkpoint carries the unigram baseline of the training corpus
    import torch

    ckpt = torch.load(
        tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    freqs = ckpt["hyper_parameters"].get("residue_frequencies")
    assert freqs is not None and abs(sum(freqs) - 1.0) < 1e-6


@pytest.mark.parametrize(
    "experiment", ["trembl_uni", "trembl_bid", "trembl_concat_8192", "cpu_study", "demo"]
)
def test_experiment_one_step(experiment, tmp_path):
    # the experiment's own optimiser, objective and data mode; tiny sizes and the sample corpus
    metrics = run_train(
        [
            f"experiment={experiment}",
            "model.attention.nb_features=16",
            *SAMPLE_DATA,
            "data.batch_size=2",
        ],
        tmp_path,
    )
    assert metrics and (tmp_path / "metrics.json").is_file()


@pytest.mark.parametrize("attention", ["exact", "favor_softmax"])
def test_clm_with_other_kernels(attention, tmp_path):
    extra = ["model.attention.nb_features=16"] if attention.startswith("favor") else []
    metrics = run_train([f"attention={attention}", "objective=clm", *extra], tmp_path)
    assert metrics


def _cli(args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "protein_performer.train", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_MODE": "disabled", **(env or {})},
    )


def test_cli_reports_config_errors(tmp_path):
    result = _cli(["model.attention.kind=nope", f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "attention.kind must be one of" in result.stderr
    assert "Traceback" not in result.stderr
    result = _cli(
        [
            "data=fasta",
            "data.train=[missing.fasta]",
            f"data.valid=[{SAMPLE_VALID}]",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert f"data.train: no such file or directory: {tmp_path / 'missing.fasta'}" in result.stderr


def test_cli_reports_bad_fasta(tmp_path):
    bad = tmp_path / "bad.fasta"
    bad.write_text(">P1\nMKVL\n>P2\nMK!L\n")
    result = _cli(
        [
            "data=fasta",
            f"data.train=[{bad}]",
            f"data.valid=[{SAMPLE_VALID}]",
            "logger=none",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "bad.fasta" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "attention,impl", [("exact", None), ("favor_softmax", "chunkwise"), ("favor_relu", "chunkwise")]
)
def test_bf16_mixed_clm_steps_stay_finite(attention, impl, tmp_path):
    # the GPU default (trainer=gpu: bf16-mixed) on CPU autocast; chunkwise is the CUDA path
    extra = (
        []
        if impl is None
        else ["model.attention.nb_features=16", f"model.attention.causal_impl={impl}"]
    )
    metrics = run_train(
        [f"attention={attention}", "objective=clm", *extra, "trainer.precision=bf16-mixed"],
        tmp_path,
    )
    losses = {k: v for k, v in metrics.items() if "loss" in k}
    assert losses and all(math.isfinite(v) for v in losses.values()), metrics


@pytest.mark.parametrize(
    "target,option,message",
    [
        ("training.callbacks.progress_bar", {"mode": "bogus"}, "callbacks.progress.mode must be"),
        ("training.loggers.wandb_mode", {"explicit": "bogus"}, "logger.wandb.mode must be"),
    ],
)
def test_a_bad_callback_or_logger_option_is_its_own_input_error(target, option, message):
    """Hydra wraps a target's error in InstantiationException; the task runner gets the
    InputError itself (its one line, exit 2), while any other error stays wrapped."""
    from hydra.errors import InstantiationException
    from omegaconf import OmegaConf

    from protein_performer.cli.train import _instantiate_all
    from protein_performer.errors import InputError

    node = {"_target_": f"protein_performer.{target}", **option}
    with pytest.raises(InputError, match=message):
        _instantiate_all(OmegaConf.create({"x": node}))
    broken = {"_target_": "protein_performer.training.callbacks.progress_bar", "nope": 1}
    with pytest.raises(InstantiationException):  # a TypeError: not the user's option check
        _instantiate_all(OmegaConf.create({"x": broken}))
