"""Train for a wall-clock budget: probe this machine's step rate, then fix the step count.

``budget.minutes`` (conf/train.yaml) makes a run fit its minutes on any machine while the
learning-rate schedule still ends where training does. :class:`TimeBudget` times the first
``probe_steps`` optimizer steps (after ``skip_steps`` of allocation warm-up), sets the loop's
``max_steps`` and the schedule's ``total_steps`` to what the rest of the budget holds at that
rate, and re-estimates every ``probe_steps`` steps (so validations count) until a quarter of
the budget has passed; then the step count is final. ``trainer.max_steps`` stays a cap. Moving
the schedule's end early changes the learning rate by well under 1% (the cosine is still flat
there).

``budget.share`` names a file: the first run that finalises its step count writes it, and
every run that finds it adopts the count instead of probing, so the runs of a sweep train the
same number of steps (put the slowest first). The decision is kept in checkpoints (a resumed
run keeps its step count and the time already spent) and written to ``time_budget.json`` in
the run directory.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_only

from protein_performer.training.optim import WarmupDecay

log = logging.getLogger("protein_performer.train")

RECORD = "time_budget.json"

_now = time.perf_counter  # the clock (tests replace it)


@dataclass
class BudgetConfig:
    """``budget`` in conf/train.yaml. ``minutes`` None: ``trainer.max_steps`` alone."""

    minutes: float | None = None
    probe_steps: int = 50
    share: str | None = None

    def __post_init__(self) -> None:
        if self.minutes is not None and not (
            math.isfinite(float(self.minutes)) and self.minutes > 0
        ):
            raise ValueError(f"budget.minutes must be > 0 or null, got {self.minutes}")
        if self.probe_steps < 5:
            raise ValueError(
                f"budget.probe_steps must be >= 5 (steps timed before deciding), "
                f"got {self.probe_steps}"
            )


def read_shared(path: str | Path) -> int | None:
    """The step count a ``budget.share`` file holds; None when there is no file yet."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        steps = int(json.loads(path.read_text())["max_steps"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"budget.share: {path} is not a time-budget record ({err}); delete it to probe again"
        ) from None
    if steps <= 0:
        raise ValueError(f"budget.share: {path} holds max_steps {steps}; delete it to probe again")
    return steps


class TimeBudget(Callback):
    """Sets ``max_steps`` (and the schedule's end) so that fitting ends within ``minutes``.

    The budget runs from the start of the training loop (data set-up before it is not
    counted) to its end, validations included. ``settle`` is the fraction of the budget
    after which the step count is final; ``margin`` the share of the remaining time kept
    back for the last validation and checkpoint.
    """

    def __init__(
        self,
        minutes: float,
        probe_steps: int = 50,
        share: str | Path | None = None,
        skip_steps: int = 5,
        settle: float = 0.25,
        margin: float = 0.02,
        record_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.budget_s = float(minutes) * 60.0
        self.probe_steps = int(probe_steps)
        self.share = Path(share) if share else None
        self.skip_steps = int(skip_steps)
        self.settle = float(settle)
        self.margin = float(margin)
        self.record_dir = Path(record_dir) if record_dir else None
        self.max_steps: int | None = None  # the decision (provisional until ``final``)
        self.final = False
        self.source = ""  # "probe", "shared" or "checkpoint"
        self.steps_per_s = float("nan")
        self._spent_before = 0.0  # seconds of earlier segments of a resumed run
        self._cap: int | None = None
        self._t0: float | None = None  # the clock at the start of this segment
        self._probe_t: float | None = None
        self._probe_step = 0
        self._start_step = 0
        self._val_s = 0.0  # seconds of validation in this segment, and how many
        self._val_n = 0
        self._val_t: float | None = None
        self._probe_val_s = 0.0

    # -- timing ---------------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Seconds of this budget spent so far (earlier segments of a resumed run included)."""
        if self._t0 is None:
            return self._spent_before
        return self._spent_before + _now() - self._t0

    # -- Lightning hooks ------------------------------------------------------------------------

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._t0 = _now()
        self._start_step = trainer.global_step
        self._probe_t = None
        cap = trainer.max_steps
        self._cap = cap if cap is not None and cap > 0 else None
        if self.max_steps is not None and self.final:
            self.source = "checkpoint"
            self._apply(trainer, self.max_steps)
            log.info("time budget: %d steps, kept from the checkpoint", self.max_steps)
            return
        shared = self._read_shared()
        if shared is not None:
            steps = shared if self._cap is None else min(shared, self._cap)
            self.max_steps, self.final, self.source = steps, True, "shared"
            self._apply(trainer, steps)
            log.info("time budget: %d steps, shared by %s", steps, self.share)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self.max_steps is not None and step >= self.max_steps:
            # stop through should_stop as well: Lightning then validates this last step
            trainer.should_stop = True
        if self.final:
            return
        done = step - self._start_step
        if self._probe_t is None:
            if done >= self.skip_steps:
                self._probe_t, self._probe_step = _now(), step
                self._probe_val_s = self._val_s
            return
        timed = step - self._probe_step
        if timed <= 0 or timed % self.probe_steps:
            return
        # every rank reaches this step; rank 0's clock decides for all of them
        val_since = self._val_s - self._probe_val_s
        rate = timed / max(1e-9, _now() - self._probe_t - val_since)  # training steps/s
        remaining = (self.budget_s - self.elapsed()) * (1.0 - self.margin)
        steps = step + self._steps_that_fit(remaining, rate, step, self._val_interval(trainer))
        if self._cap is not None:
            steps = min(steps, self._cap)
        final = self.elapsed() >= self.settle * self.budget_s
        steps, final, rate = trainer.strategy.broadcast((steps, final, rate), src=0)
        first = self.max_steps is None
        self.max_steps, self.final, self.steps_per_s, self.source = steps, final, rate, "probe"
        self._apply(trainer, steps)
        if first and not final:
            log.info(
                "time budget %.1f min: %.2f steps/s -> %d steps (re-estimated until %.0f%% of "
                "the budget has passed)",
                self.budget_s / 60,
                rate,
                steps,
                100 * self.settle,
            )
        if final:
            log.info(
                "time budget %.1f min: %d steps at %.2f steps/s%s",
                self.budget_s / 60,
                steps,
                rate,
                " (trainer.max_steps caps it)" if steps == self._cap else "",
            )
            self._write_shared(steps, rate)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._val_t = None if trainer.sanity_checking else _now()

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._val_t is not None:
            self._val_s += _now() - self._val_t
            self._val_n += 1
            self._val_t = None

    def _val_interval(self, trainer: Trainer) -> float | None:
        """Optimizer steps between validations; None when there are none or they are timed."""
        batches = trainer.val_check_batch
        limit = trainer.limit_val_batches
        if (
            not batches
            or not math.isfinite(batches)
            or limit == 0
            or trainer.val_dataloaders is None
        ):
            return None
        return batches / max(1, trainer.accumulate_grad_batches)

    def _steps_that_fit(
        self, seconds: float, rate: float, step: int, interval: float | None
    ) -> int:
        """The most optimizer steps after ``step`` that fit ``seconds`` at ``rate`` steps/s,
        with the validations they bring (each as long as the mean one so far) and the last
        one Lightning runs at the final step."""
        per_val = self._val_s / self._val_n if self._val_n else 0.0
        if not interval or per_val <= 0:
            return max(1, int(seconds * rate))

        def cost(n: int) -> float:
            end = step + n
            vals = int(end // interval) - int(step // interval)
            vals += 1 if end % interval else 0  # the final validation off the interval
            vals += 0 if step % interval else 1  # this step's, still to come
            return n / rate + vals * per_val

        n = max(1, int((seconds - per_val) / (1.0 / rate + per_val / interval)))
        while n > 1 and cost(n) > seconds:
            n -= 1
        while cost(n + 1) <= seconds:
            n += 1
        return n

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.max_steps is None:  # trainer.max_steps came first, before any estimate
            self.source = "trainer.max_steps"
        self._write_record(trainer)

    # -- checkpoints ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "max_steps": self.max_steps,
            "final": self.final,
            "spent_s": self.elapsed(),
            "budget_s": self.budget_s,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.max_steps = state_dict.get("max_steps")
        self.final = bool(state_dict.get("final", False)) and self.max_steps is not None
        self._spent_before = float(state_dict.get("spent_s", 0.0))

    # -- helpers --------------------------------------------------------------------------------

    def _apply(self, trainer: Trainer, steps: int) -> None:
        """The loop stops after ``steps`` optimizer steps; the decay ends there too."""
        trainer.fit_loop.epoch_loop.max_steps = int(steps)
        for config in trainer.lr_scheduler_configs:
            for fn in getattr(config.scheduler, "lr_lambdas", []):
                if isinstance(fn, WarmupDecay):
                    fn.total_steps = int(steps)

    def _read_shared(self) -> int | None:
        return None if self.share is None else read_shared(self.share)

    @rank_zero_only
    def _write_shared(self, steps: int, rate: float) -> None:
        if self.share is None:
            return
        self.share.parent.mkdir(parents=True, exist_ok=True)
        record = {"max_steps": steps, "steps_per_s": rate, "minutes": self.budget_s / 60}
        try:  # the first writer wins (runs of a parallel launcher may race)
            fd = os.open(self.share, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(record, indent=2) + "\n")

    @rank_zero_only
    def _write_record(self, trainer: Trainer) -> None:
        if self.record_dir is None:
            return
        self.record_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "minutes": self.budget_s / 60,
            "max_steps": self.max_steps,
            "steps_trained": trainer.global_step,
            "source": self.source,
            "steps_per_s": None if math.isnan(self.steps_per_s) else self.steps_per_s,
            "cap": self._cap,
            "train_minutes": self.elapsed() / 60,
        }
        (self.record_dir / RECORD).write_text(json.dumps(record, indent=2) + "\n")
