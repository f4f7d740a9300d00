"""``budget.minutes``: a run fits its wall-clock budget, the schedule ends with it, sweeps can
share one step count and a resumed run keeps its decision. The clock is fake (tests/fake_clock.py:
0.1 s per training batch), so the step counts are exact."""

from __future__ import annotations

import json
import math
from pathlib import Path

import fake_clock
import pandas as pd
import pytest
import torch
from common import TINY_RUN

from protein_performer.cli.config import ConfigError, build_setup, compose_train
from protein_performer.training import budget as budget_module
from protein_performer.training.budget import RECORD, TimeBudget

LR, MIN_RATIO = 1e-3, 0.1
# 3 s of budget at 0.1 s a step: 5 steps skipped, 5 timed (10 steps/s, 1 s spent, past the
# quarter of the budget: final) -> 10 + int(2 s * 0.98 * 10/s) = 29 steps
BUDGET = [
    "budget.minutes=0.05",
    "budget.probe_steps=5",
    "+callbacks.tick._target_=fake_clock.Tick",
    "+callbacks.tick.step_s=0.1",
]
RUN = [
    *TINY_RUN,
    "trainer.max_steps=1000",
    "trainer.val_check_interval=1000",
    "trainer.limit_val_batches=2",
    f"optim.lr={LR}",
    f"optim.min_lr_ratio={MIN_RATIO}",
    "optim.warmup_steps=1",
    "test=false",
]


@pytest.fixture(autouse=True)
def _fake_clock(monkeypatch):
    fake_clock.NOW[0] = 0.0
    monkeypatch.setattr(budget_module, "_now", fake_clock.now)


def _train(overrides: list[str], out: Path) -> dict:
    from protein_performer.cli.train import train

    train(compose_train([*RUN, *BUDGET, *overrides], output_dir=out))
    return json.loads((out / RECORD).read_text())


def _metrics(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "csv" / "metrics.csv")


def test_budget_sets_steps_and_ends_the_schedule(tmp_path):
    record = _train([], tmp_path)
    assert record["max_steps"] == record["steps_trained"] == 29, record
    assert record["source"] == "probe" and record["cap"] == 1000
    assert math.isclose(record["steps_per_s"], 10.0, rel_tol=1e-6)
    assert record["train_minutes"] <= 0.05  # 2.9 fake seconds
    last = torch.load(
        tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    assert last["global_step"] == 29  # the evaluated model has every step
    frame = _metrics(tmp_path)
    lrs = frame["lr-AdamW/pg1"].dropna()
    # the cosine ends with the budget (without it, total = the cap of 1000 steps: lr near peak)
    assert lrs.iloc[-1] < LR * (MIN_RATIO + 0.01), lrs.tail()
    # Lightning validates the budget's last step although it is off the validation interval
    valid = frame.dropna(subset=["valid/loss"])
    assert list(valid["step"]) == [28], valid[["step", "valid/loss"]]  # 0-based 29th step


def test_validation_time_counts(tmp_path):
    # validations every 5 steps, 0.25 s per batch: the run takes fewer steps in the same budget
    record = _train(
        [
            "trainer.val_check_interval=5",
            "+callbacks.tick.val_s=0.25",
        ],
        tmp_path,
    )
    # at step 10: 1.5 s spent (0.5 of it the validation at step 5), 10 training steps/s and
    # 0.5 s per validation; 4 more steps bring the validation at 10 and a last one at 14:
    # 0.4 + 2 x 0.5 = 1.4 s <= 0.98 x 1.5 s (5 more would be 1.5 s)
    assert record["steps_trained"] == record["max_steps"] == 14, record
    assert math.isclose(record["steps_per_s"], 10.0, rel_tol=1e-6)
    assert record["train_minutes"] * 60 <= 3.0 + 1e-9


def test_max_steps_caps_the_budget(tmp_path):
    record = _train(["trainer.max_steps=12"], tmp_path)
    assert record["max_steps"] == record["steps_trained"] == 12


def test_runs_of_a_sweep_share_the_first_decision(tmp_path):
    share = tmp_path / "sweep" / "time_budget.json"
    first = _train([f"budget.share={share}"], tmp_path / "first")
    assert json.loads(share.read_text())["max_steps"] == first["max_steps"] == 29
    # a slower model (0.2 s a step) alone would take fewer steps; sharing, it takes the same
    fake_clock.NOW[0] = 0.0
    alone = _train(["++callbacks.tick.step_s=0.2"], tmp_path / "alone")
    assert alone["steps_trained"] < 29
    fake_clock.NOW[0] = 0.0
    second = _train([f"budget.share={share}", "++callbacks.tick.step_s=0.2"], tmp_path / "second")
    assert second["steps_trained"] == 29 and second["source"] == "shared"


def test_resume_keeps_the_decision(tmp_path):
    keep_all = [
        "callbacks.model_checkpoint.monitor=null",
        "callbacks.model_checkpoint.save_top_k=-1",
        "callbacks.model_checkpoint.every_n_train_steps=10",
        "callbacks.model_checkpoint.filename='s{step}'",
    ]
    first = _train(keep_all, tmp_path / "first")
    assert first["steps_trained"] == 29
    ckpt = tmp_path / "first" / "checkpoints" / "sstep=20.ckpt"
    assert ckpt.is_file(), sorted(p.name for p in ckpt.parent.iterdir())
    # much slower after the resume: a fresh probe would stop early; the checkpoint's count holds
    fake_clock.NOW[0] = 0.0
    resumed = _train(
        [*keep_all, f"ckpt_path='{ckpt}'", "++callbacks.tick.step_s=1.0"], tmp_path / "resumed"
    )
    assert resumed["steps_trained"] == 29 and resumed["source"] == "checkpoint"
    # and the time spent before the resume still counts against the budget
    assert resumed["train_minutes"] * 60 > 20 * 0.1


def test_a_provisional_decision_is_probed_again_with_the_time_spent():
    cb = TimeBudget(minutes=1.0)
    cb.load_state_dict({"max_steps": 300, "final": False, "spent_s": 12.5})
    assert not cb.final and cb.elapsed() == 12.5
    assert cb.state_dict()["spent_s"] == 12.5


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["budget.minutes=0"], "budget.minutes must be > 0"),
        (["budget.minutes=-3"], "budget.minutes must be > 0"),
        (["budget.minutes=5", "budget.probe_steps=2"], "budget.probe_steps must be >= 5"),
        (["budget.minutes=5", "optim.total_steps=100"], "drop one"),
        (["+budget.secs=5"], "budget"),
    ],
)
def test_bad_budget_values_are_config_errors(overrides, message, tmp_path):
    cfg = compose_train([*TINY_RUN, *overrides], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=message):
        build_setup(cfg)


@pytest.mark.parametrize("text", ["not json", '{"steps": 3}', '{"max_steps": 0}'])
def test_a_broken_share_file_is_a_config_error(text, tmp_path):
    share = tmp_path / "time_budget.json"
    share.write_text(text)
    cfg = compose_train(
        [*TINY_RUN, "budget.minutes=5", f"budget.share={share}"], output_dir=tmp_path
    )
    with pytest.raises(ConfigError, match="delete it to probe again"):
        build_setup(cfg)
