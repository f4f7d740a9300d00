"""Loggers: Weights & Biases that never needs the network unless the user asked for it, and
a CSV logger that keeps a resumed run's history (:class:`ResumableCSVLogger`).

Mode: an explicit ``mode`` wins; else ``WANDB_MODE``; else online when the user is logged in
(``WANDB_API_KEY`` or a ``~/.netrc`` entry for api.wandb.ai); else offline (sync later with
``wandb sync <run dir>/wandb/offline-run-*``).

The run id is written to ``<save_dir>/wandb_run_id``. A run resumed from
``<old run>/checkpoints/last.ckpt`` reads ``<old run>/wandb_run_id`` and continues that wandb
run (``resume="allow"``).
"""

from __future__ import annotations

import csv
import logging
import netrc
import os
import secrets
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from protein_performer.errors import InputError

log = logging.getLogger(__name__)

RUN_ID_FILE = "wandb_run_id"
WANDB_HOST = "api.wandb.ai"


def wandb_mode(explicit: str | None = None) -> str:
    """``online`` | ``offline`` | ``disabled``, as described in the module docstring."""
    if explicit:
        if explicit not in ("online", "offline", "disabled"):
            raise InputError(
                f"logger.wandb.mode must be one of ['disabled', 'offline', 'online'] "
                f"or null, got {explicit!r}"
            )
        return explicit
    env = os.environ.get("WANDB_MODE")
    if env:
        return env
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        if netrc.netrc().authenticators(WANDB_HOST):
            return "online"
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        pass
    return "offline"


def checkpoint_run_dir(ckpt_path: str | Path) -> Path:
    """The run directory of a checkpoint written by this project: <run>/checkpoints/x.ckpt."""
    ckpt = Path(ckpt_path)
    return ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent


def find_run_id(save_dir: str | Path, ckpt_path: str | Path | None = None) -> str | None:
    """The wandb run id to continue: this run dir's, else the resumed checkpoint's run's."""
    candidates = [Path(save_dir) / RUN_ID_FILE]
    if ckpt_path is not None:
        candidates.append(checkpoint_run_dir(ckpt_path) / RUN_ID_FILE)
    for path in candidates:
        if path.is_file():
            run_id = path.read_text().strip()
            if run_id:
                return run_id
    return None


def wandb_logger(
    save_dir: str,
    project: str = "protein-performer",
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] | None = None,
    id: str | None = None,
    mode: str | None = None,
    log_model: bool = False,
    ckpt_path: str | Path | None = None,
    **kwargs: Any,
):
    """A Lightning ``WandbLogger`` (or ``None`` when wandb is missing or disabled)."""
    try:
        import wandb  # noqa: F401
        from pytorch_lightning.loggers import WandbLogger
    except ImportError:
        log.warning("wandb is not installed: logging to CSV only (pip install wandb)")
        return None
    mode = wandb_mode(mode)
    if mode == "disabled":
        return None
    run_id = id or find_run_id(save_dir, ckpt_path)
    if run_id is None:
        # wandb's own ids: 8 characters of [a-z0-9]
        alphabet = string.ascii_lowercase + string.digits
        run_id = "".join(secrets.choice(alphabet) for _ in range(8))
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    from pytorch_lightning.utilities import rank_zero_only

    if rank_zero_only.rank == 0:
        (Path(save_dir) / RUN_ID_FILE).write_text(run_id + "\n")
    # wandb reads its mode from the environment too; keep both in agreement
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        name=name,
        group=group,
        tags=list(tags or []),
        id=run_id,
        resume="allow",
        mode=mode,
        offline=mode == "offline",
        # checkpoints cannot be uploaded offline (Lightning refuses the pair)
        log_model=log_model if mode == "online" else False,
        **kwargs,
    )


def history_csv(
    log_dir: str | Path, resume_from: str | Path | None, relative: str | Path
) -> Path | None:
    """The metrics.csv holding a resumed run's earlier rows: this run's own (a resume into
    the same run directory), else the one beside the checkpoint (``<old run>/<relative>``)."""
    own = Path(log_dir) / "metrics.csv"
    if own.is_file():
        return own
    if resume_from is None:
        return None
    other = checkpoint_run_dir(resume_from) / relative / "metrics.csv"
    return other if other.is_file() else None


class HistoryWriter(ExperimentWriter):
    """Lightning's CSV ExperimentWriter, except that a resume keeps the earlier rows:
    ``history``'s rows before ``resume_step`` start this run's metrics.csv."""

    def __init__(self, log_dir: str, history: Path | None, resume_step: int | None) -> None:
        self.history = history
        self.resume_step = resume_step
        super().__init__(log_dir=log_dir)  # calls _check_log_dir_exists

    def _check_log_dir_exists(self) -> None:
        if self.resume_step is None:  # a fresh run: Lightning's behaviour (old rows go)
            super()._check_log_dir_exists()
            return
        rows: list[dict[str, str]] = []
        keys: list[str] = []
        if self.history is not None:
            with open(self.history, newline="") as f:
                reader = csv.DictReader(f)
                keys = sorted(reader.fieldnames or [])  # Lightning writes its header sorted
                # rows past the checkpoint were logged after it: the resumed run logs them again
                rows = [r for r in reader if r.get("step") and int(r["step"]) < self.resume_step]
        os.makedirs(self.log_dir, exist_ok=True)
        path = os.path.join(self.log_dir, self.NAME_METRICS_FILE)
        if not keys:
            if os.path.isfile(path):
                os.remove(path)
            return
        tmp = path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
        self.metrics_keys = keys
        log.info(
            "csv: kept %d rows of %s before step %d", len(rows), self.history, self.resume_step
        )


class ResumableCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger``, except that a resumed run keeps every earlier row.

    Lightning's logger deletes ``metrics.csv`` when its directory is not empty. Given
    ``resume_step`` (the resumed checkpoint's global step, set by ``protein-performer-train``)
    this one keeps the rows logged before that step -- from this run directory's file, or from
    the checkpoint's run (``ckpt_path``) when resuming into a new directory -- and drops the
    later ones (a run killed after its last checkpoint logged them; the resumed run logs them
    again), so the history holds every step once. Rows are written at every logging step
    (``flush_logs_every_n_steps=1``), so a killed run has lost none it logged.
    """

    def __init__(
        self,
        save_dir: str,
        name: str = "csv",
        version: str | int | None = "",
        flush_logs_every_n_steps: int = 1,
        resume_step: int | None = None,
        ckpt_path: str | Path | None = None,
    ) -> None:
        super().__init__(
            save_dir, name=name, version=version, flush_logs_every_n_steps=flush_logs_every_n_steps
        )
        self.resume_step = resume_step
        self.ckpt_path = ckpt_path

    @property
    @rank_zero_experiment
    def experiment(self) -> HistoryWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            history = history_csv(
                self.log_dir, self.ckpt_path, os.path.relpath(self.log_dir, self.save_dir)
            )
            self._experiment = HistoryWriter(self.log_dir, history, self.resume_step)
        return self._experiment
