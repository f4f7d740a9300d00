"""Weights & Biases logger that never needs the network unless the user asked for it.

Mode: an explicit ``mode`` wins; else ``WANDB_MODE``; else online when the user is logged in
(``WANDB_API_KEY`` or a ``~/.netrc`` entry for api.wandb.ai); else offline (sync later with
``wandb sync <run dir>/wandb/offline-run-*``).

The run id is written to ``<save_dir>/wandb_run_id``. A run resumed from
``<old run>/checkpoints/last.ckpt`` reads ``<old run>/wandb_run_id`` and continues that wandb
run (``resume="allow"``).
"""

from __future__ import annotations

import logging
import netrc
import os
import secrets
import string
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger(__name__)

RUN_ID_FILE = "wandb_run_id"
WANDB_HOST = "api.wandb.ai"


def wandb_mode(explicit: str | None = None) -> str:
    """``online`` | ``offline`` | ``disabled``, as described in the module docstring."""
    if explicit:
        if explicit not in ("online", "offline", "disabled"):
            raise ValueError(
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
        from pytorch_lightning.loggers import WandbLogger
        import wandb  # noqa: F401
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
