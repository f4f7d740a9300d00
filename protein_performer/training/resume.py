"""Pre-flight check of a checkpoint to resume from, before Lightning opens it.

Lightning reads a bad ``ckpt_path`` deep inside ``Trainer.fit``: a truncated file ends in a
``PytorchStreamReader`` traceback, another model size in a size-mismatch traceback, and another
objective trains on silently. :func:`check_resume` reads the file with the project's own reader
(:func:`protein_performer.model.checkpoint.read_checkpoint`) and compares its hyper-parameters
with the run's config (model, objective, optimizer), so each case is one line naming what
differs and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from protein_performer.errors import InputError
from protein_performer.model.checkpoint import CheckpointError, is_finetune, read_checkpoint
from protein_performer.model.config import ModelConfig
from protein_performer.objective import Objective

# Fields a resume may change: they alter neither the weights' shapes nor the function the
# model computes (regularisation, and how the same causal FAVOR+ sum is evaluated).
MAY_DIFFER = frozenset(
    {"dropout", "attention.dropout", "attention.causal_impl", "attention.chunk_size"}
)


class ResumeError(InputError):
    """The checkpoint to resume from is unreadable or belongs to another model or objective."""


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def differences(
    hparams: dict[str, Any], model: ModelConfig, objective: Objective, optim: str = "adamw"
) -> list[tuple[str, Any, Any]]:
    """``(setting, checkpoint's value, this run's value)`` where a checkpoint's
    hyper-parameters and this run disagree: the optimizer (``optim.name``: its state has
    another layout), the objective, then the attention kind and the model's fields
    (:data:`MAY_DIFFER` aside)."""
    diffs = []
    theirs_optim = (hparams.get("optim") or {}).get("name", "adamw")  # older runs: AdamW
    if theirs_optim != optim:
        diffs.append(("optim", theirs_optim, optim))
    theirs = Objective.from_hparams(hparams)
    if theirs.name != objective.name:
        diffs.append(("objective", theirs.name, objective.name))
    elif theirs.causal is False and theirs.mask_prob != objective.mask_prob:
        diffs.append(("objective.mask_prob", theirs.mask_prob, objective.mask_prob))
    ckpt_model = _flatten(dict(hparams["model"]))
    run_model = _flatten(model.to_dict())
    # causal follows the objective (already reported); the attention kind leads the sizes
    order = ["attention.kind"] + [k for k in run_model if k != "attention.kind"]
    for key in order:
        if key in MAY_DIFFER or key in ("causal", "attention.causal"):
            continue
        if key in ckpt_model and ckpt_model[key] != run_model[key]:
            # the override that sets it: attention=<kind>, model.attention.<field>, model.<field>
            name = "attention" if key == "attention.kind" else f"model.{key}"
            diffs.append((name, ckpt_model[key], run_model[key]))
    return diffs


def _value(value: Any) -> str:
    """As typed on the command line: null, true/false, numbers and names bare."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def check_resume(
    path: str | Path, model: ModelConfig, objective: Objective, optim: str = "adamw"
) -> int:
    """Raise :class:`ResumeError` unless ``path`` is a readable checkpoint of this model,
    objective and optimizer (``optim.name``); returns its ``global_step`` (where the resumed
    run continues)."""
    p = Path(path)
    try:
        ckpt = read_checkpoint(p)
    except (CheckpointError, FileNotFoundError) as err:
        # the reader's message names the file; torch's own reasons may span lines
        reason = str(err).splitlines()[0] if str(err) else f"{p}: {type(err).__name__}"
        raise ResumeError(
            f"ckpt_path: cannot resume: {reason}. To resume, give another checkpoint of the "
            f"run (e.g. a best-*.ckpt beside it); to start afresh, delete it or drop ckpt_path"
        ) from None
    if is_finetune(ckpt):
        raise ResumeError(
            f"ckpt_path: {p} is a fine-tuning checkpoint (protein-performer-finetune): train "
            f"resumes only its own runs; use it with the other commands (eval, embed, score, "
            f"generate, analyze read its language model) or export it"
        )
    diffs = differences(ckpt["hyper_parameters"], model, objective, optim)
    if diffs:
        theirs = [f"{name}={_value(a)}" for name, a, _ in diffs]
        ours = [f"{name}={_value(b)}" for name, _, b in diffs]
        raise ResumeError(
            f"ckpt_path: {p} was trained with {' '.join(theirs)}, this run asks for "
            f"{' '.join(ours)}: resume with the checkpoint's settings (add "
            f"{' '.join(theirs)}), or start a new run without ckpt_path"
        )
    return int(ckpt.get("global_step", 0))
