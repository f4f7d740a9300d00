"""Read a protein-performer checkpoint without importing Lightning.

A checkpoint written by :class:`protein_performer.training.module.ProteinLMModule` holds
``hyper_parameters`` (plain types: ``model`` dict, ``objective`` name and ``mask_prob``,
``residue_frequencies``) and a ``state_dict`` whose model weights carry the ``model.`` prefix.
:func:`read_checkpoint` reads and checks one; :func:`protein_performer.runner.load_model`
rebuilds its model, and ``ProteinLMModule.load_from_checkpoint`` the whole LightningModule,
from the same reading.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from protein_performer.errors import InputError

PREFIX = "model."


class CheckpointError(InputError):
    """The checkpoint is missing, not a protein-performer checkpoint, or damaged."""


def _torch_load(path: Path, mmap: bool) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        # Lightning may pickle objects outside the weights-only allow-list (loop or callback
        # state); checkpoints are trusted input here, as for Lightning's own ckpt_path.
        return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict:
    """The dict of a protein-performer training checkpoint, its format checked; ``mmap``:
    tensors stay on disk until touched (to read the step or hyper-parameters only).

    Raises :class:`CheckpointError` with a one-line reason (the only place that says
    "checkpoint not found").
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(
            f"checkpoint not found: {p} (set ckpt_path= to a .ckpt written by "
            "protein-performer-train, e.g. <run dir>/checkpoints/last.ckpt, or to a folder "
            "written by protein-performer-export)"
        )
    try:
        ckpt = _torch_load(p, mmap)
    except Exception as err:  # noqa: BLE001 -- any unreadable file gets the same message
        # torch's reason may span lines; the first says what it is
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{p} is not a readable torch checkpoint ({reason}): a truncated, empty or other "
            "file; give a .ckpt written by protein-performer-train, e.g. "
            "<run dir>/checkpoints/last.ckpt"
        ) from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise CheckpointError(
            f"{p} is not a protein-performer checkpoint (expected a Lightning checkpoint with "
            "'hyper_parameters' and 'state_dict', as written by protein-performer-train)"
        )
    hp = ckpt["hyper_parameters"]
    if not isinstance(hp.get("model"), dict) or "objective" not in hp:
        raise CheckpointError(
            f"{p} is not a protein-performer checkpoint: its hyper_parameters lack 'model' "
            f"and 'objective' (found {sorted(hp)})"
        )
    return ckpt
