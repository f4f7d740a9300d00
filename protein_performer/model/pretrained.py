"""The exported-folder format (Hugging Face style): ``config.json`` + ``model.safetensors``.

    save_folder(out, model, objective)          # writes config.json and model.safetensors
    folder = read_pretrained_folder(out)        # its config, objective, weights...
    model = folder.load_into(PerformerLM(folder.model_cfg))   # the same model bit for bit

(``protein_performer.runner.load_model`` takes such a folder where it takes a checkpoint.)

``model.safetensors`` holds the :class:`PerformerLM` state dict under the ``performer.``
prefix (the attribute name of the ``transformers`` wrappers, so both loaders read one file)
and, for a fine-tuned model, its head under ``head.``. A fine-tune exported with
``lora=adapters`` keeps its LoRA adapters apart, in ``peft``'s ``adapter_config.json`` +
``adapter_model.safetensors`` beside the base weights; the readers here fold them in. The
FAVOR+ projections are persistent buffers of the state dict
(``performer.blocks.<i>.attn.projection`` [m, Dh]), saved as they are: features are reproduced
exactly, not redrawn; ``config.json`` records the seed and draw
step they came from. Derived tables (rotary, sinusoidal) are rebuilt from the config.

This module is the format and does not build models (``model/lm.py`` imports it for
``PerformerLM.from_pretrained``); the export command, model card and ``transformers`` classes live
in :mod:`protein_performer.finetune`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from protein_performer.data.alphabet import ALPHABET
from protein_performer.model.checkpoint import CheckpointError
from protein_performer.model.config import ModelConfig
from protein_performer.model.lora_fold import fold_lora, lora_scaling, lora_settings_of
from protein_performer.objective import Objective

if TYPE_CHECKING:
    from protein_performer.model.lm import PerformerLM

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MODEL_TYPE = "protein_performer"
FORMAT = "protein-performer-folder/1"
BACKBONE_PREFIX = "performer."
HEAD_PREFIX = "head."
# peft's adapter files (PeftModel.save_pretrained), written beside the base model by
# protein-performer-export lora=adapters; config.json's "adapters" records them
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
ARCHITECTURES = {"mlm": "PerformerForMaskedLM", "clm": "PerformerForCausalLM"}


class PretrainedFolderError(CheckpointError):
    """A directory given as a model is not an exported protein-performer folder."""


def alphabet_dict() -> dict[str, Any]:
    """The token table and the named special indices (config.json ``alphabet``)."""
    return {
        "tokens": list(ALPHABET.tokens),
        "pad_idx": ALPHABET.pad_idx,
        "mask_idx": ALPHABET.mask_idx,
        "cls_idx": ALPHABET.cls_idx,
        "eos_idx": ALPHABET.eos_idx,
        "sep_idx": ALPHABET.sep_idx,
        "unk_idx": ALPHABET.unk_idx,
        "layout": "<cls> residues <eos>",
    }


def feature_record(model: PerformerLM) -> dict[str, Any] | None:
    """How the FAVOR+ projections were drawn (None for other attention kinds)."""
    draws = [
        {"layer_id": int(b.attn.layer_id), "step": int(b.attn.last_redraw_step)}
        for b in model.blocks
        if hasattr(b.attn, "projection")
    ]
    if not draws:
        return None
    a = model.cfg.attention
    return {
        "stored": "performer.blocks.<i>.attn.projection in model.safetensors ([nb_features, "
        "head_dim], used as is: features are reproduced exactly)",
        "seed": a.seed,
        "nb_features": a.nb_features,
        "feature_type": a.feature_type,
        "ortho_scaling": a.ortho_scaling,
        "redraw_interval": a.redraw_interval,
        "draws": draws,  # each projection = draw(seed, layer_id, step)
    }


def folder_config(
    model: PerformerLM,
    objective: Objective,
    residue_frequencies: np.ndarray | list[float] | None = None,
    head: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    architecture: str | None = None,
) -> dict[str, Any]:
    """The ``config.json`` of a folder (plain JSON types). Top-level ``vocab_size``,
    ``hidden_size``... are conveniences for ``transformers`` tools; ``model`` is the source."""
    cfg = model.cfg
    freqs = None if residue_frequencies is None else [float(f) for f in residue_frequencies]
    return {
        "model_type": MODEL_TYPE,
        "architectures": [architecture or ARCHITECTURES[objective.name]],
        "format": FORMAT,
        "model": cfg.to_dict(),
        "objective": {"name": objective.name, "mask_prob": objective.mask_prob},
        "alphabet": alphabet_dict(),
        "features": feature_record(model),
        "residue_frequencies": freqs,
        "head": head,
        "training": training or {},
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "max_position_embeddings": cfg.max_length,
        "is_decoder": cfg.causal,
        "pad_token_id": ALPHABET.pad_idx,
        "bos_token_id": ALPHABET.cls_idx,
        "eos_token_id": ALPHABET.eos_idx,
        "mask_token_id": ALPHABET.mask_idx,
    }


def folder_state(model: PerformerLM, head: torch.nn.Module | None = None) -> dict[str, Any]:
    """The tensors of ``model.safetensors`` (contiguous CPU copies, prefixed)."""
    state = {BACKBONE_PREFIX + k: v for k, v in model.state_dict().items()}
    if head is not None:
        state.update({HEAD_PREFIX + k: v for k, v in head.state_dict().items()})
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_folder(
    out: str | Path,
    model: PerformerLM,
    objective: Objective,
    *,
    residue_frequencies: np.ndarray | list[float] | None = None,
    head: torch.nn.Module | None = None,
    head_config: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    architecture: str | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``out`` (created); returns it."""
    from safetensors.torch import save_file

    if model.cfg.causal != objective.causal:
        raise ValueError(f"model (causal={model.cfg.causal}) does not match objective {objective}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = folder_config(
        model, objective, residue_frequencies, head_config, training, architecture
    )
    save_file(folder_state(model, head), str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    for stale in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):  # an earlier export's adapters: not ours
        (out / stale).unlink(missing_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return out


def read_folder_config(path: str | Path) -> dict[str, Any]:
    """``config.json`` of an exported folder, checked; one-line errors name the fix."""
    p = Path(path)
    fix = "export one with protein-performer-export ckpt_path=<run>/checkpoints/last.ckpt out=DIR"
    if not p.is_dir():
        raise PretrainedFolderError(f"model folder not found: {p} ({fix})")
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (p / f).is_file()]
    if missing:
        raise PretrainedFolderError(
            f"{p} is not an exported protein-performer model: it lacks {' and '.join(missing)} "
            f"({fix}; or give a .ckpt file)"
        )
    try:
        config = json.loads((p / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PretrainedFolderError(f"{p / CONFIG_FILE} is not valid JSON: {err}") from None
    if not isinstance(config, dict) or config.get("model_type") != MODEL_TYPE:
        found = config.get("model_type") if isinstance(config, dict) else type(config).__name__
        raise PretrainedFolderError(
            f"{p / CONFIG_FILE}: model_type is {found!r}, not {MODEL_TYPE!r} (not a "
            f"protein-performer export; {fix})"
        )
    for key in ("model", "objective"):
        if not isinstance(config.get(key), dict):
            raise PretrainedFolderError(f"{p / CONFIG_FILE} lacks its {key!r} section ({fix})")
    lost = [f for f in (ADAPTER_CONFIG, ADAPTER_WEIGHTS) if not (p / f).is_file()]
    if config.get("adapters") and lost:
        raise PretrainedFolderError(
            f"{p}: config.json says its LoRA adapters are beside the base weights, but "
            f"{' and '.join(lost)} are missing (copy the whole exported folder)"
        )
    return config


def config_objects(config: dict[str, Any], where: str | Path) -> tuple[ModelConfig, Objective]:
    """The typed model config and objective a folder's ``config.json`` describes."""
    try:
        cfg = ModelConfig.from_dict(dict(config["model"]))
        o = config["objective"]
        objective = Objective(str(o["name"]), o.get("mask_prob", 0.15))
    except (KeyError, TypeError, ValueError) as err:
        raise PretrainedFolderError(f"{where}: bad config.json: {err}") from None
    if cfg.causal != objective.causal:
        raise PretrainedFolderError(
            f"{where}: its model (causal={cfg.causal}) does not match its objective {objective}"
        )
    return cfg, objective


def read_folder_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of ``model.safetensors`` (prefixed keys), with the folder's peft LoRA
    adapters (``adapter_model.safetensors``), if any, folded in."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    def read(p: Path) -> dict[str, torch.Tensor]:
        try:
            return load_file(str(p))
        except (SafetensorError, OSError) as err:
            raise PretrainedFolderError(f"{p} is not a readable safetensors file: {err}") from None

    folder = Path(path)
    state = read(folder / WEIGHTS_FILE)
    if not (folder / ADAPTER_CONFIG).is_file():
        return state
    try:
        settings = json.loads((folder / ADAPTER_CONFIG).read_text())
        scaling = lora_scaling(*lora_settings_of(settings))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise PretrainedFolderError(f"{folder / ADAPTER_CONFIG}: {err}") from None
    adapters = {k.removeprefix(PEFT_PREFIX): v for k, v in read(folder / ADAPTER_WEIGHTS).items()}
    try:
        return fold_lora({**state, **adapters}, scaling)
    except ValueError as err:
        raise PretrainedFolderError(f"{folder / ADAPTER_WEIGHTS}: {err}") from None


def split_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_backbone(
    model: PerformerLM, state: dict[str, torch.Tensor], where: str | Path
) -> PerformerLM:
    """Load the ``performer.*`` tensors into ``model`` strictly (a mismatch names keys)."""
    backbone = split_state(state, BACKBONE_PREFIX)
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    if missing or unexpected:
        raise PretrainedFolderError(
            f"{where}: weights do not match the model config.json describes "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    return model


@dataclass
class PretrainedFolder:
    """What an exported folder holds: the model config and objective it was trained for, its
    tensors (prefixed keys), the train-corpus residue frequencies and the whole config.json."""

    path: Path
    model_cfg: ModelConfig
    objective: Objective
    weights: dict[str, torch.Tensor]
    residue_frequencies: np.ndarray | None
    config: dict[str, Any]

    def load_into(self, model: PerformerLM) -> PerformerLM:
        """``model`` (built from :attr:`model_cfg`) with the folder's backbone weights, in
        eval mode."""
        return load_backbone(model, self.weights, self.path).eval()


def read_pretrained_folder(path: str | Path) -> PretrainedFolder:
    """The language model's part of an exported folder (a fine-tuned folder's backbone; its
    head is read by :func:`protein_performer.finetune.export.load_classifier_folder`)."""
    p = Path(path)
    config = read_folder_config(p)
    cfg, objective = config_objects(config, p)
    freqs = config.get("residue_frequencies")
    return PretrainedFolder(
        path=p,
        model_cfg=cfg,
        objective=objective,
        weights=read_folder_weights(p),
        residue_frequencies=None if freqs is None else np.asarray(freqs, dtype=np.float64),
        config=config,
    )
