"""``checkpoints/last.ckpt``: the latest training state, whatever the validation loss did.

Lightning >= 2.6 writes ``ModelCheckpoint(save_last=True)``'s ``last.ckpt`` only when a top-k
checkpoint is saved at the same step, so with ``save_top_k: 1`` it is a copy of the best
checkpoint, not the last: a resume from it would repeat steps and an evaluation of it would miss
the last ones. :class:`LastCheckpoint` owns ``last.ckpt`` instead (conf/callbacks/default.yaml).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.trainer.states import TrainerFn

from protein_performer.errors import InputError


class LastCheckpoint(Checkpoint):
    """Writes ``dirpath/filename`` after every validation of a fit, every
    ``every_n_train_steps`` optimizer steps (when set), at the last step and when training
    ends (after an epoch-bounded fit).

    A :class:`Checkpoint`, so Lightning runs it after the other callbacks (after
    ModelCheckpoint has recorded this validation's best), and the file holds their state too.
    """

    def __init__(
        self,
        dirpath: str | Path,
        filename: str = "last.ckpt",
        every_n_train_steps: int | None = None,
    ) -> None:
        super().__init__()
        if every_n_train_steps is not None and every_n_train_steps <= 0:
            raise InputError(
                f"callbacks.last_checkpoint.every_n_train_steps must be > 0 or null, "
                f"got {every_n_train_steps}"
            )
        self.path = Path(dirpath) / filename
        self.every_n_train_steps = every_n_train_steps
        self._saved_step: int | None = None

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        n = self.every_n_train_steps
        step = trainer.global_step
        # the last step is saved here, mid-epoch, not at on_train_end: by then Lightning has
        # closed the epoch, and a resume would start the next one (other batches) instead of
        # continuing this one
        last = trainer.should_stop or (trainer.max_steps > 0 and step >= trainer.max_steps)
        if last or (n and step % n == 0):
            self._save(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == TrainerFn.FITTING:
            self._save(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer)

    def _save(self, trainer: Trainer) -> None:
        if trainer.fast_dev_run or self._saved_step == trainer.global_step:
            return
        # rows logged so far reach their files first: a resume keeps exactly those before it
        for logger in trainer.loggers:
            logger.save()
        # every rank calls it; the strategy writes once (rank 0, or gathered for FSDP). Written
        # beside the old file and renamed over it: a run killed while writing keeps a whole
        # last.ckpt to resume from, never a truncated one
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero and tmp.exists():
            if tmp.is_dir() and self.path.is_dir():  # a sharded (FSDP) checkpoint directory
                shutil.rmtree(self.path)
            os.replace(tmp, self.path)
        trainer.strategy.barrier("LastCheckpoint")
        self._saved_step = trainer.global_step
