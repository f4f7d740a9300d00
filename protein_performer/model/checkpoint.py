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
from protein_performer.model.lora_fold import fold_lora, lora_scaling, lora_settings_of

PREFIX = "model."
# a fine-tuning checkpoint (protein-performer-finetune): the backbone of its classifier
FINETUNE_PREFIX = "net.performer."


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


def is_finetune(ckpt: dict) -> bool:
    """Whether a checkpoint dict was written by protein-performer-finetune (it has a head)."""
    return "head" in ckpt["hyper_parameters"]


def lm_state(ckpt: dict, path: str | Path) -> dict[str, torch.Tensor]:
    """The :class:`PerformerLM` state dict of a checkpoint: a training checkpoint's
    ``model.*`` weights, or a fine-tuning checkpoint's backbone (``net.performer.*``, its
    LoRA adapters folded in; the task head left out)."""
    hp, weights = ckpt["hyper_parameters"], ckpt["state_dict"]
    prefix = FINETUNE_PREFIX if is_finetune(ckpt) else PREFIX
    state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
    if not state:
        raise CheckpointError(f"{path}: the state_dict holds no '{prefix}*' weights")
    if is_finetune(ckpt) and hp.get("mode") == "lora":
        try:
            state = fold_lora(state, lora_scaling(*lora_settings_of(dict(hp["lora"]))))
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: cannot fold its LoRA adapters: {err}") from None
    return state
