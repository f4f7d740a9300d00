"""A clock that advances by training and validation batches, not by wall time: makes
time-budget runs (protein_performer/training/budget.py) deterministic in tests."""

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
