"""What one walk of the model's blocks returns (:meth:`PerformerLM.run`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class ModelOutputs:
    """Outputs of one pass, each only when requested.

    ``logits`` ``[B, L, V]``; ``hidden[i]`` ``[B, L, D]``: block ``i``'s output (keys as the
    caller gave them; the last block, ``-1``, after the final LayerNorm, as the head reads it);
    ``attention[i]`` ``[B, H, L, L]``: block ``i``'s attention matrix on its own input (rows sum
    to 1 over real keys); ``qkv[i]``: block ``i``'s ``(q, k, v)`` each ``[B, H, L, Dh]`` after
    rotary (the FAVOR+ error diagnostic's input).
    """

    logits: Tensor | None = None
    hidden: dict[int, Tensor] = field(default_factory=dict)
    attention: dict[int, Tensor] = field(default_factory=dict)
    qkv: dict[int, tuple[Tensor, Tensor, Tensor]] = field(default_factory=dict)
