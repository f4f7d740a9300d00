"""The one checkpoint loader: a training checkpoint -> its model in eval mode, and what
evaluating it needs (objective, train-corpus residue frequencies)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from protein_performer.devices import resolve_device
from protein_performer.model.checkpoint import (
    CheckpointError,
    is_finetune,
    lm_state,
    read_checkpoint,
)
from protein_performer.model.config import ModelConfig
from protein_performer.model.lm import PerformerLM
from protein_performer.model.pretrained import read_pretrained_folder
from protein_performer.objective import Objective

log = logging.getLogger(__name__)


@dataclass
class LoadedLM:
    """A trained model in eval mode, with what is needed to evaluate it."""

    model: PerformerLM
    model_cfg: ModelConfig
    objective: Objective
    residue_frequencies: np.ndarray | None  # [V] train-corpus token frequencies, if recorded


def load_model(path: str | Path, device: torch.device | str | None = None) -> LoadedLM:
    """Rebuild the :class:`PerformerLM` of a training checkpoint, in eval mode, on ``device``
    (``None``: the CPU; else as :func:`~protein_performer.devices.resolve_device` reads it).

    A directory is a folder written by ``protein-performer-export``
    (:func:`load_pretrained_folder`).
    A fine-tuning checkpoint (protein-performer-finetune) or folder gives its fine-tuned
    language model: the backbone with its LoRA adapters folded in and the LM head it kept
    (the task head is not used), so eval, embed, score, generate and analyze run on it.
    A missing, foreign or damaged file raises :class:`CheckpointError` (an
    :class:`~protein_performer.errors.InputError`) naming the file and the fix.
    """
    p = Path(path)
    if p.is_dir():
        return load_pretrained_folder(p, device)
    ckpt = read_checkpoint(p)
    hp = ckpt["hyper_parameters"]
    cfg = ModelConfig.from_dict(dict(hp["model"]))
    objective = Objective.from_hparams(hp)
    if cfg.causal != objective.causal:
        raise CheckpointError(
            f"{p}: its model (causal={cfg.causal}) does not match its objective {objective} "
            f"(causal={objective.causal}); the checkpoint is damaged"
        )
    model = PerformerLM(cfg)
    state = lm_state(ckpt, p)
    if is_finetune(ckpt):
        log.info("%s is a fine-tuning checkpoint: its language model, task head unused", p)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{p}: weights do not match the model its hyper-parameters describe "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    model.to("cpu" if device is None else resolve_device(device)).eval()
    freqs = hp.get("residue_frequencies")
    return LoadedLM(
        model=model,
        model_cfg=cfg,
        objective=objective,
        residue_frequencies=None if freqs is None else np.asarray(freqs, dtype=np.float64),
    )


def load_pretrained_folder(path: str | Path, device: torch.device | str | None = None) -> LoadedLM:
    """The language model of an exported folder (``config.json`` + ``model.safetensors``) in
    eval mode on ``device``, as :func:`load_model` gives a checkpoint's; a fine-tuned
    folder's backbone. A folder that is not an export raises :class:`PretrainedFolderError`."""
    folder = read_pretrained_folder(path)
    model = folder.load_into(PerformerLM(folder.model_cfg))
    model.to("cpu" if device is None else resolve_device(device))
    return LoadedLM(
        model=model,
        model_cfg=folder.model_cfg,
        objective=folder.objective,
        residue_frequencies=folder.residue_frequencies,
    )
