"""Runs past one machine: SLURM through Hydra's submitit launcher, and exact resume.

One mechanism for preemption and time limits (README "Many machines"):

1. ``hydra/launcher=slurm`` submits each job of a sweep with submitit; ``nodes`` and
   ``tasks_per_node`` come from ``trainer.num_nodes`` and ``trainer.devices`` (one task per
   GPU), so SLURM's ``srun`` starts every rank and Lightning only reads the ranks from the
   environment (:func:`slurm_plugins`).
2. On preemption or shortly before the time limit SLURM signals the job (``USR2``,
   ``signal_delay_s`` early); submitit's handler calls the Hydra launcher's ``checkpoint()``,
   which resubmits the *same* job (same overrides, same sweep directory and job number, so
   the same run directory) and requeues it (``scontrol requeue``).
3. The requeued job runs with ``ckpt_path=auto`` (the default inside a submitit job,
   :func:`effective_ckpt_path`):
   :func:`auto_checkpoint` finds ``<run dir>/checkpoints/last.ckpt`` and Lightning restores
   step, optimizer, schedule, RNG and the sampler's data position from it. Work since that
   checkpoint is redone, identically (``callbacks.last_checkpoint.every_n_train_steps``
   bounds it: ``last.ckpt`` every N steps; README "Faults and resume").

Lightning's own SLURM auto-requeue (``SIGUSR1`` -> ``hpc_ckpt_*.ckpt`` + ``scontrol
requeue``) is switched off, so a signal never requeues a job twice.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from protein_performer.errors import InputError

log = logging.getLogger("protein_performer.train")

AUTO = "auto"


class LauncherConfigError(InputError):
    """A launcher setting that cannot work; the message names the field and the fix."""


def checkpoint_dir(cfg: DictConfig) -> Path:
    """Where this run's ModelCheckpoint writes (``callbacks.model_checkpoint.dirpath``)."""
    callbacks = cfg.get("callbacks") or {}
    node = callbacks.get("model_checkpoint") if hasattr(callbacks, "get") else None
    dirpath = node.get("dirpath") if node is not None else None
    return Path(str(dirpath)) if dirpath else Path(str(cfg.paths.output_dir)) / "checkpoints"


def auto_checkpoint(cfg: DictConfig) -> Path | None:
    """``ckpt_path=auto``: this run directory's ``checkpoints/last.ckpt`` if it exists, else None.

    A fresh run directory starts from scratch; the same directory again (a requeued SLURM
    job, or the same ``hydra.run.dir``/sweep directory) continues where it stopped.
    """
    last = checkpoint_dir(cfg) / "last.ckpt"
    if last.is_file():
        log.info("ckpt_path=auto: resuming from %s", last)
        return last
    log.info("ckpt_path=auto: no %s yet, starting from scratch", last)
    return None


def in_submitit_job() -> bool:
    """True in a process started by submitit (SLURM or local executor)."""
    return bool(os.environ.get("SUBMITIT_EXECUTOR"))


def effective_ckpt_path(value: Any) -> Any:
    """``ckpt_path`` as given, except that a submitit job without one resumes automatically.

    A requeued job reruns the original command line, so it cannot be told to resume: it
    must find its own last checkpoint. ``ckpt_path=null`` given explicitly on the command
    line is the same as not giving it; start a new sweep directory for a fresh run.
    """
    if not value and in_submitit_job():
        return AUTO
    return value


def tasks_per_node(devices: Any) -> int:
    """``${pp_tasks_per_node:${trainer.devices}}``: one SLURM task per device, checked."""
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise LauncherConfigError(
            f"trainer.devices must be the number of GPUs per node (a positive integer) with "
            f"hydra/launcher=slurm, got {devices!r}: e.g. trainer.devices=4 (one SLURM task "
            f"per GPU)"
        )
    return devices


def slurm_plugins() -> list[Any]:
    """Trainer plugins for a process started by SLURM: ranks from SLURM, no Lightning requeue.

    Empty outside SLURM (Lightning picks its environment itself there).
    """
    from lightning_fabric.plugins.environments import SLURMEnvironment

    if not SLURMEnvironment.detect():
        return []
    return [SLURMEnvironment(auto_requeue=False)]


def register_cluster_resolvers() -> None:
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("pp_tasks_per_node", tasks_per_node, replace=True)
