"""LoRA adapters folded into plain weights, on state dicts: what ``peft``'s merge does
(``W <- W + (B @ A) * scaling`` on every adapted ``nn.Linear``), without ``peft``.

The readers of a fine-tuning checkpoint (``mode=lora``) and of an export with adapters
(``lora=adapters``) use it to give a plain :class:`PerformerLM`; a test checks it against
``peft``'s own merge bit for bit.
"""

from __future__ import annotations

import math
import re
from typing import Any

from torch import Tensor

# peft's keys: <layer>.lora_A.<adapter>.weight [r, in], <layer>.lora_B.<adapter>.weight
# [out, r] in a model (the adapter name dropped in an adapter_model.safetensors file); the
# wrapped layer's own tensors at <layer>.base_layer.<name>
_LORA_KEY = re.compile(r"^(?P<layer>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


def lora_scaling(r: int, alpha: float, rslora: bool = False) -> float:
    """peft's ``scaling``: ``alpha / r`` (rank-stabilised: ``alpha / sqrt(r)``)."""
    return alpha / math.sqrt(r) if rslora else alpha / r


def fold_lora(state: dict[str, Tensor], scaling: float) -> dict[str, Tensor]:
    """The plain state dict of ``state`` (a model's, with peft LoRA layers): every
    ``<layer>.weight`` = base + (B @ A) * scaling, ``.base_layer`` dropped from the names.
    A state without LoRA keys comes back renamed only. An adapter without its pair or its
    base weight raises ``ValueError`` naming the layer."""
    plain: dict[str, Tensor] = {}
    pairs: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        m = _LORA_KEY.match(key)
        if m:
            pairs.setdefault(m["layer"], {})[m["ab"]] = value
        else:
            plain[key.replace(".base_layer.", ".")] = value
    for layer, ab in pairs.items():
        key = f"{layer}.weight"
        if set(ab) != {"A", "B"} or key not in plain:
            raise ValueError(f"LoRA adapter of {layer} is incomplete (A, B and the base weight)")
        # peft: get_delta_weight = (B @ A) * scaling, then weight += delta (same float ops)
        plain[key] = plain[key] + (ab["B"] @ ab["A"]) * scaling
    return plain


def lora_settings_of(values: dict[str, Any]) -> tuple[int, float, bool]:
    """(r, alpha, rslora) of a fine-tuning checkpoint's ``lora`` hyper-parameters or a peft
    ``adapter_config.json`` (``ValueError`` for what a plain fold cannot reproduce)."""
    if "lora_alpha" not in values:  # our LoraSettings.to_dict()
        return int(values["r"]), float(values["alpha"]), False
    unsupported = [
        k for k in ("use_dora", "fan_in_fan_out", "rank_pattern", "alpha_pattern") if values.get(k)
    ]
    if values.get("peft_type", "LORA") != "LORA" or unsupported:
        raise ValueError(
            f"only plain LoRA adapters can be folded (peft_type LORA, no {unsupported})"
        )
    return int(values["r"]), float(values["lora_alpha"]), bool(values.get("use_rslora"))
