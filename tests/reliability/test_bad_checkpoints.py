"""Resuming from a bad checkpoint: a truncated or empty file, another model size, objective
or attention kind. protein-performer-train reads ckpt_path with the project's reader and
compares its hyper-parameters with the run's config before Lightning opens it: one line naming
what differs and the fix, exit status 2, no traceback."""

from __future__ import annotations

import pytest
from battery import assert_one_line_error, run_script
from common import SAMPLE_DATA, TINY_RUN

TRAIN = [*TINY_RUN, *SAMPLE_DATA, "logger=none", "test=false"]
SCRIPT = "protein-performer-train"


@pytest.mark.parametrize(
    "overrides, names",
    [
        (["model.d_model=64"], ["model.d_model=32", "model.d_model=64"]),
        (["model.n_layers=2"], ["model.n_layers=1", "model.n_layers=2"]),
        (["objective=clm"], ["objective=mlm", "objective=clm"]),
        (["attention=exact"], ["attention=favor_relu", "attention=exact"]),
        (
            ["model.attention.nb_features=16"],
            ["model.attention.nb_features=64", "model.attention.nb_features=16"],
        ),
    ],
    ids=["size", "depth", "objective", "attention", "features"],
)
def test_other_model_or_objective(
    overrides, names, tiny_mlm, tmp_path, monkeypatch, capsys, one_thread
):
    args = [*TRAIN, *overrides, f"ckpt_path={tiny_mlm}"]
    code, err = run_script(SCRIPT, args, tmp_path, monkeypatch, capsys)
    line = assert_one_line_error(code, err, SCRIPT, "ckpt_path", str(tiny_mlm), *names)
    # the fix: the checkpoint's settings, or a fresh run
    assert "resume with the checkpoint's settings" in line and "without ckpt_path" in line
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was trained


@pytest.mark.parametrize("name", ["truncated.ckpt", "empty", "plain.fasta"])
def test_unreadable_checkpoint(name, bad_inputs, tmp_path, monkeypatch, capsys, one_thread):
    path = bad_inputs[name]
    code, err = run_script(SCRIPT, [*TRAIN, f"ckpt_path={path}"], tmp_path, monkeypatch, capsys)
    line = assert_one_line_error(code, err, SCRIPT, "ckpt_path", str(path))
    assert "drop ckpt_path" in line and "PytorchStreamReader" not in err.split("(")[0]


def test_auto_with_a_truncated_last_ckpt(bad_inputs, tmp_path, monkeypatch, capsys, one_thread):
    """ckpt_path=auto finds the run directory's last.ckpt; a damaged one is named, not loaded."""
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(bad_inputs["truncated.ckpt"].read_bytes())
    code, err = run_script(SCRIPT, [*TRAIN, "ckpt_path=auto"], tmp_path, monkeypatch, capsys)
    assert_one_line_error(code, err, SCRIPT, "ckpt_path", str(last))


def test_what_may_differ_on_resume(tiny_mlm):
    """Dropout and how causal FAVOR+ is evaluated may change on resume; the step comes back."""
    import dataclasses

    from protein_performer.model.checkpoint import read_checkpoint
    from protein_performer.model.config import ModelConfig
    from protein_performer.objective import Objective
    from protein_performer.training.resume import check_resume, differences

    ckpt = read_checkpoint(tiny_mlm)
    model = ModelConfig.from_dict(ckpt["hyper_parameters"]["model"])
    assert check_resume(tiny_mlm, model, Objective("mlm")) == ckpt["global_step"] == 1
    changed = dataclasses.replace(
        model, dropout=0.3, attention=dataclasses.replace(model.attention, causal_impl="loop")
    )
    assert differences(ckpt["hyper_parameters"], changed, Objective("mlm")) == []
    other = dataclasses.replace(model, d_ff=128, attention=model.attention)
    assert differences(ckpt["hyper_parameters"], other, Objective("mlm", mask_prob=0.2)) == [
        ("objective.mask_prob", 0.15, 0.2),
        ("model.d_ff", 64, 128),
    ]
