"""Load a trained LM from a Lightning checkpoint without importing Lightning.

A checkpoint written by :class:`protein_performer.training.module.ProteinLMModule` holds
``hyper_parameters`` (plain types: ``model`` dict, ``objective`` name and ``mask_prob``,
``residue_frequencies``) and a ``state_dict`` whose model weights carry the ``model.`` prefix.
:func:`read_checkpoint` reads and checks one; :func:`load_lm` rebuilds its model, and
``ProteinLMModule.load_from_checkpoint`` the whole LightningModule, from the same reading.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from protein_performer.model.config import ModelConfig
from protein_performer.model.lm import PerformerLM
from protein_performer.objective import Objective

PREFIX = "model."


class CheckpointError(ValueError):
    """The file is not a protein-performer checkpoint (or is damaged)."""


@dataclass
class LoadedLM:
    """A trained model in eval mode, with what is needed to evaluate it."""

    model: PerformerLM
    model_cfg: ModelConfig
    objective: Objective
    residue_frequencies: np.ndarray | None  # [V] train-corpus token frequencies, if recorded

    @classmethod
    def ready(
        cls,
        model: PerformerLM,
        objective: Objective,
        residue_frequencies: list[float] | None,
        map_location: str | torch.device,
    ) -> "LoadedLM":
        """``model`` moved to ``map_location`` in eval mode, with its recorded frequencies."""
        model.to(map_location).eval()
        freqs = residue_frequencies
        return cls(
            model=model,
            model_cfg=model.cfg,
            objective=objective,
            residue_frequencies=None if freqs is None else np.asarray(freqs, dtype=np.float64),
        )


def _torch_load(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # Lightning may pickle objects outside the weights-only allow-list (loop or callback
        # state); checkpoints are trusted input here, as for Lightning's own ckpt_path.
        return torch.load(path, map_location="cpu", weights_only=False)


def read_checkpoint(path: str | Path) -> dict:
    """The dict of a protein-performer training checkpoint, its format checked.

    Raises :class:`FileNotFoundError` or :class:`CheckpointError` with a one-line reason.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {p} (give a .ckpt written by protein-performer-train, e.g. "
            "ckpt_path=outputs/train/<date>/<time>/checkpoints/last.ckpt)"
        )
    try:
        ckpt = _torch_load(p)
    except Exception as err:  # noqa: BLE001 -- any unreadable file gets the same message
        raise CheckpointError(f"{p} is not a readable torch checkpoint: {err}") from err
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


def load_lm(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedLM:
    """Rebuild the :class:`PerformerLM` of a training checkpoint, in eval mode; a directory is
    an exported folder (:func:`protein_performer.model.pretrained.load_pretrained_folder`)."""
    p = Path(path)
    if p.is_dir():
        from protein_performer.model.pretrained import load_pretrained_folder

        return load_pretrained_folder(p, map_location)
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
    state = {k[len(PREFIX) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(PREFIX)}
    if not state:
        raise CheckpointError(f"{p}: the state_dict holds no 'model.*' weights")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{p}: weights do not match the model its hyper-parameters describe "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    return LoadedLM.ready(model, objective, hp.get("residue_frequencies"), map_location)


def load_checkpoint(path: str | Path, *, error: type[Exception] = FileNotFoundError) -> LoadedLM:
    """:func:`load_lm` for an entry point (a .ckpt or an exported folder): a missing path raises ``error`` (the caller's
    input-error class) naming the ``ckpt_path=`` setting to fix."""
    p = Path(path)
    if not p.exists():
        raise error(
            f"checkpoint not found: {p} (set ckpt_path= to a .ckpt written by "
            "protein-performer-train, e.g. <run dir>/checkpoints/last.ckpt, or to a folder "
            "written by protein-performer-export)"
        )
    return load_lm(p)
