"""Callbacks that make training runs deterministic in tests: a clock that advances by training
and validation batches, not by wall time (time budgets, protein_performer/training/budget.py),
and a crash at a given step."""

from __future__ import annotations

from typing import Any

from pytorch_lightning import Callback

NOW = [0.0]


def now() -> float:
    return NOW[0]


class Tick(Callback):
    """Advances :data:`NOW` by ``step_s`` per training batch and ``val_s`` per validation
    batch (put it before the callback that reads the clock)."""

    def __init__(self, step_s: float = 0.1, val_s: float = 0.0) -> None:
        self.step_s = step_s
        self.val_s = val_s

    def on_train_batch_start(self, *args: Any, **kwargs: Any) -> None:
        NOW[0] += self.step_s

    def on_validation_batch_start(self, *args: Any, **kwargs: Any) -> None:
        if not args[0].sanity_checking:
            NOW[0] += self.val_s


class Interrupt(RuntimeError):
    """What :class:`RaiseAtStep` raises."""


class RaiseAtStep(Callback):
    """Raises :class:`Interrupt` at the end of optimizer step ``step`` (a crash mid-run)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        if trainer.global_step >= self.step:
            raise Interrupt(f"interrupted at step {trainer.global_step}")
