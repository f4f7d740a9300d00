"""Resuming from a checkpoint continues exactly: the losses of the steps after the resume
equal those of an uninterrupted run (same step, optimizer, schedule, data position, RNG)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from common import TINY_RUN

from protein_performer.cli.config import ConfigError, compose_train

TINY = [
    *TINY_RUN,
    "trainer.limit_val_batches=0",
    "optim.warmup_steps=2",
    "optim.total_steps=5",
    "callbacks.model_checkpoint.monitor=null",
    "callbacks.model_checkpoint.every_n_train_steps=2",
    "test=false",
    # a feature redraw after the resume point: the draw must not depend on the interruption
    "attention=favor_relu",
    "model.attention.nb_features=16",
    "model.attention.redraw_interval=3",
]


def _losses(run_dir: Path) -> pd.Series:
    frame = pd.read_csv(run_dir / "csv" / "metrics.csv")
    cols = [c for c in frame.columns if c.startswith("train/loss")]
    assert cols, f"no train/loss column in {list(frame.columns)}"
    col = "train/loss_step" if "train/loss_step" in cols else cols[0]
    rows = frame[["step", col]].dropna()
    return rows.set_index("step")[col]


def _train(overrides, out):
    from protein_performer.cli.train import train

    return train(compose_train([*TINY, *overrides], output_dir=out))


@pytest.mark.slow
@pytest.mark.parametrize("objective,optim", [("mlm", "adamw"), ("clm", "adamw"), ("clm", "muon")])
def test_resume_matches_uninterrupted(objective, optim, tmp_path):
    run = [f"objective={objective}", f"optim={optim}"]
    _train([*run, "trainer.max_steps=5"], tmp_path / "full")
    _train([*run, "trainer.max_steps=2"], tmp_path / "first")
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    _train([*run, "trainer.max_steps=5", f"ckpt_path={ckpt}"], tmp_path / "resumed")
    full, resumed = _losses(tmp_path / "full"), _losses(tmp_path / "resumed")
    after = [s for s in resumed.index if s in full.index]
    assert len(after) >= 3, (full, resumed)
    for step in after:
        assert math.isclose(resumed[step], full[step], rel_tol=1e-5, abs_tol=1e-6), (
            f"step {step}: resumed {resumed[step]} != uninterrupted {full[step]}"
        )
    # the resumed run's metrics.csv starts with the first run's rows (ResumableCSVLogger)
    assert resumed.index[0] == full.index[0] and list(resumed.index) == list(full.index)
    # and the first part matches too (same seed, same data order)
    first = _losses(tmp_path / "first")
    for step in first.index:
        assert math.isclose(first[step], full[step], rel_tol=1e-5, abs_tol=1e-6)


@pytest.mark.parametrize("first,second", [("adamw", "muon"), ("muon", "adamw")])
def test_resume_with_another_optimizer_is_one_clear_error(first, second, tmp_path):
    _train(["objective=clm", f"optim={first}", "trainer.max_steps=2"], tmp_path / "first")
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    with pytest.raises(ConfigError, match=rf"trained with optim={first}, this run asks for "):
        _train(
            ["objective=clm", f"optim={second}", "trainer.max_steps=4", f"ckpt_path={ckpt}"],
            tmp_path / "resumed",
        )


def test_wandb_resume_finds_the_old_run_id(tmp_path, monkeypatch):
    from protein_performer.training.loggers import RUN_ID_FILE, find_run_id, wandb_mode

    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    (old / RUN_ID_FILE).write_text("abc123xy\n")
    assert find_run_id(tmp_path / "new", old / "checkpoints" / "last.ckpt") == "abc123xy"
    assert find_run_id(tmp_path / "new") is None
    # offline unless logged in or told otherwise
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    assert wandb_mode() == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password secret\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"
    assert wandb_mode("offline") == "offline"


def test_csv_history_kept_up_to_the_resumed_step(tmp_path):
    """Lightning's CSVLogger deleted metrics.csv on resume; ResumableCSVLogger keeps the rows
    before the checkpoint's step and drops later ones (logged again by the resumed run)."""
    from protein_performer.training.loggers import ResumableCSVLogger

    first = ResumableCSVLogger(str(tmp_path))
    for step in range(5):
        first.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
    first.log_metrics({"valid/loss": 0.5}, step=3)
    first.save()
    # a resume from step 3 into the same run directory: steps 0-2 kept, 3 and 4 logged again
    again = ResumableCSVLogger(str(tmp_path), resume_step=3)
    again.log_metrics({"train/loss": 0.25}, step=3)
    again.save()
    frame = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    assert list(frame["step"]) == [0, 1, 2, 3]
    assert list(frame["train/loss"]) == [1.0, 0.5, 1.0 / 3, 0.25]
    # a resume into a new directory starts from the checkpoint run's rows
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    new = ResumableCSVLogger(str(tmp_path / "new"), resume_step=2, ckpt_path=ckpt)
    new.log_metrics({"train/loss": 9.0}, step=2)
    new.save()
    frame = pd.read_csv(tmp_path / "new" / "csv" / "metrics.csv")
    assert list(frame["step"]) == [0, 1, 2] and frame["train/loss"].iloc[-1] == 9.0
    # a fresh run (no resume) in a used directory starts empty, as Lightning's does
    fresh = ResumableCSVLogger(str(tmp_path))
    fresh.log_metrics({"train/loss": 7.0}, step=0)
    fresh.save()
    assert list(pd.read_csv(tmp_path / "csv" / "metrics.csv")["step"]) == [0]
