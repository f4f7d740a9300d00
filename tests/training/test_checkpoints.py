"""checkpoints/last.ckpt holds the latest state (LastCheckpoint), not a copy of the best one
(what Lightning >= 2.6's ModelCheckpoint(save_last=True) writes when the last validation is not
a new best)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from common import TINY_RUN
from fake_clock import Interrupt

from protein_performer.cli.config import compose_train

RUN = [
    *TINY_RUN,
    "trainer.max_steps=7",
    "trainer.val_check_interval=2",
    "test=false",
    # the "best" is the highest validation loss: with the loss falling, an early step
    "callbacks.model_checkpoint.mode=max",
]


def _step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def _train(overrides: list[str], out: Path) -> None:
    from protein_performer.cli.train import train

    train(compose_train([*RUN, *overrides], output_dir=out))


def test_last_is_the_final_step_when_the_best_is_earlier(tmp_path):
    _train([], tmp_path)
    ckpts = tmp_path / "checkpoints"
    best = [p for p in ckpts.iterdir() if p.name.startswith("best-")]
    assert len(best) == 1 and _step(best[0]) < 7, best  # the case this test is about
    assert _step(ckpts / "last.ckpt") == 7  # step 7 is off the validation interval too


def test_last_every_n_steps_survives_a_crash(tmp_path):
    overrides = [
        "trainer.val_check_interval=1000",
        "callbacks.last_checkpoint.every_n_train_steps=2",
        "+callbacks.crash._target_=fake_clock.RaiseAtStep",
        "+callbacks.crash.step=5",
    ]
    with pytest.raises(Interrupt):
        _train(overrides, tmp_path)
    assert _step(tmp_path / "checkpoints" / "last.ckpt") == 4


def test_bad_every_n_is_refused():
    from protein_performer.training.checkpoints import LastCheckpoint

    with pytest.raises(ValueError, match="every_n_train_steps must be > 0"):
        LastCheckpoint("x", every_n_train_steps=0)


def test_a_save_killed_midway_leaves_the_previous_last_ckpt(tmp_path):
    """last.ckpt is written beside itself and renamed over: a kill while writing leaves the
    previous, whole file (a truncated last.ckpt would stop ckpt_path=auto for good)."""
    from types import SimpleNamespace

    from protein_performer.training.checkpoints import LastCheckpoint

    saved = []

    def save_checkpoint(path):
        Path(path).write_bytes(b"partial")
        if len(saved) == 1:
            raise Interrupt("killed while writing")
        saved.append(path)

    trainer = SimpleNamespace(
        fast_dev_run=False,
        global_step=2,
        loggers=[],
        save_checkpoint=save_checkpoint,
        is_global_zero=True,
        strategy=SimpleNamespace(barrier=lambda name: None),
    )
    callback = LastCheckpoint(tmp_path)
    callback._save(trainer)
    last = tmp_path / "last.ckpt"
    assert last.read_bytes() == b"partial" and saved[0] != last  # written aside, renamed
    last.write_bytes(b"whole step 2")
    trainer.global_step = 4
    with pytest.raises(Interrupt):
        callback._save(trainer)
    assert last.read_bytes() == b"whole step 2"
