"""Progress output with tokens/s: a tqdm bar on a terminal, plain log lines otherwise.

:func:`progress_bar` picks one (conf/callbacks/default.yaml). Both count real tokens
(``batch["mask"].sum()``) per optimizer step and show the throughput of all ranks
(this rank's count times the world size; ranks see equal-sized shares).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import torch
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ProgressBar, TQDMProgressBar

from protein_performer.errors import InputError

log = logging.getLogger("protein_performer.train")


class _TokenMeter:
    """Tokens per second over the steps since the last read (counted on device, read rarely)."""

    def __init__(self) -> None:
        self.tokens: torch.Tensor | int = 0
        self.since = time.perf_counter()
        self.rate = float("nan")

    def add(self, batch: Any) -> None:
        if isinstance(batch, dict) and "mask" in batch:
            # sum on device; .item() only when read, so GPUs are not synchronised every step
            self.tokens = self.tokens + batch["mask"].sum()

    def read(self, world_size: int = 1) -> float:
        now = time.perf_counter()
        elapsed = now - self.since
        tokens = float(self.tokens.item() if torch.is_tensor(self.tokens) else self.tokens)
        if elapsed > 0 and tokens > 0:
            self.rate = tokens * world_size / elapsed
        self.tokens, self.since = 0, now
        return self.rate


def _fmt_rate(rate: float) -> str:
    if rate != rate:  # nan
        return "-"
    return f"{rate / 1e3:.1f}k" if rate >= 1e3 else f"{rate:.0f}"


class TokensProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar with a ``tok/s`` field."""

    def __init__(self, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=refresh_rate)
        self._meter = _TokenMeter()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._meter.add(batch)
        n = batch_idx + 1
        if self._should_update(n, self.train_progress_bar.total):
            self._meter.read(trainer.world_size)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics["tok/s"] = _fmt_rate(self._meter.rate)
        return metrics


class LogLinesProgress(ProgressBar):
    """Plain periodic log lines (CI logs, files, ``nohup``): one per ``every_n_steps`` steps
    and one per validation, with the progress-bar metrics, tokens/s and the time left."""

    def __init__(self, every_n_steps: int = 50) -> None:
        super().__init__()
        if every_n_steps <= 0:
            raise InputError(f"callbacks.progress.every_n_steps must be > 0, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._enabled = True
        self._meter = _TokenMeter()
        self._start = time.perf_counter()
        self._start_step = 0
        self._last_logged = -1

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start = time.perf_counter()
        self._start_step = trainer.global_step
        self._meter = _TokenMeter()

    def _metrics_text(self, trainer: Trainer, pl_module: LightningModule) -> str:
        parts = []
        for key, value in self.get_metrics(trainer, pl_module).items():
            if key == "v_num":
                continue
            parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
        return " | ".join(parts)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._meter.add(batch)
        step = trainer.global_step
        if not self._enabled or step == self._last_logged or step % self.every_n_steps:
            return
        self._last_logged = step
        rate = self._meter.read(trainer.world_size)
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        elapsed = time.perf_counter() - self._start
        done = step - self._start_step
        eta = ""
        if total and done > 0:
            eta = f" | eta {_fmt_time(elapsed / done * (total - step))}"
        of = f"/{total}" if total else ""
        log.info(
            "step %d%s | epoch %d | %s | %s tok/s | %s elapsed%s",
            step,
            of,
            trainer.current_epoch,
            self._metrics_text(trainer, pl_module),
            _fmt_rate(rate),
            _fmt_time(elapsed),
            eta,
        )

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._enabled or trainer.sanity_checking:
            return
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("valid")}
        text = " | ".join(f"{k} {float(v):.4g}" for k, v in sorted(metrics.items()))
        log.info("validation at step %d | %s", trainer.global_step, text)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._enabled:
            return
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("test")}
        text = " | ".join(f"{k} {float(v):.4g}" for k, v in sorted(metrics.items()))
        log.info("test | %s", text)


def _fmt_time(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def progress_bar(mode: str = "auto", refresh_rate: int = 1, every_n_steps: int = 50) -> ProgressBar:
    """The progress callback: ``bar`` (tqdm), ``lines`` (log lines), or ``auto`` (a bar when
    stdout is a terminal, lines otherwise)."""
    if mode not in ("auto", "bar", "lines"):
        raise InputError(
            f"callbacks.progress.mode must be one of ['auto', 'bar', 'lines'], got {mode!r}"
        )
    if mode == "auto":
        mode = "bar" if sys.stdout.isatty() else "lines"
    if mode == "bar":
        return TokensProgressBar(refresh_rate=refresh_rate)
    return LogLinesProgress(every_n_steps=every_n_steps)
