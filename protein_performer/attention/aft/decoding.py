"""Token-by-token decoding of causal AFT (every kind).

Every kind is keys with a position bias inside a window plus bias 0 outside it. Keys that
left the window are folded into an O(1) running (max, numerator, denominator) per channel;
the window's keys are cached: none for aft_simple (O(1)), the last s for aft_local, the last K
for aft_conv (bounded), all for aft_full. :func:`aft_step` returns ``[B, H, 1, Dh]``: row t of
the causal forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from protein_performer.attention.base import DecodingState
from protein_performer.attention.numerics import STAB_FLOOR, compute_dtype


@dataclass
class AFTState(DecodingState):
    """Per channel: running max, numerator and denominator of the keys that left the bias
    window (bias 0), ``[B, H, 1, Dh]`` each, and the window's keys and values ``[B, H, n, Dh]``."""

    run_max: Tensor = field(default_factory=lambda: torch.empty(0))
    num: Tensor = field(default_factory=lambda: torch.empty(0))
    den: Tensor = field(default_factory=lambda: torch.empty(0))
    keys: Tensor = field(default_factory=lambda: torch.empty(0))
    values: Tensor = field(default_factory=lambda: torch.empty(0))
    window: int | None = 0  # keys kept with their bias; None = all (aft_full)


def aft_init_state(
    batch: int,
    heads: int,
    head_dim: int,
    window: int | None,
    device: torch.device,
    dtype: torch.dtype,
) -> AFTState:
    dt = compute_dtype(dtype)
    zeros = torch.zeros(batch, heads, 1, head_dim, device=device, dtype=dt)
    empty = zeros[:, :, :0].clone()
    return AFTState(
        run_max=torch.full_like(zeros, STAB_FLOOR),
        num=zeros.clone(),
        den=zeros.clone(),
        keys=empty,
        values=empty.clone(),
        window=window,
    )


def aft_push(state: AFTState, k: Tensor, v: Tensor) -> None:
    """Append the newest key; fold keys beyond the window into the running sums."""
    dt = state.num.dtype
    state.keys = torch.cat([state.keys, k.to(dt)], dim=-2)
    state.values = torch.cat([state.values, v.to(dt)], dim=-2)
    state.position += 1
    if state.window is None or state.keys.shape[-2] <= state.window:
        return
    n_out = state.keys.shape[-2] - state.window
    old_k, old_v = state.keys[:, :, :n_out], state.values[:, :, :n_out]
    new_max = torch.maximum(state.run_max, old_k.amax(-2, keepdim=True))
    scale = torch.exp(state.run_max - new_max)
    e = torch.exp(old_k - new_max)
    state.num = state.num * scale + (e * old_v).sum(-2, keepdim=True)
    state.den = state.den * scale + e.sum(-2, keepdim=True)
    state.run_max = new_max
    state.keys, state.values = state.keys[:, :, n_out:], state.values[:, :, n_out:]


def aft_step(q: Tensor, k: Tensor, v: Tensor, state: AFTState, bias: Tensor) -> Tensor:
    """sigmoid(q) * sum exp(K + w) V / sum exp(K + w) over all keys so far.

    ``bias`` [H or 1, n]: w of the n cached keys (oldest first) for the current query; call
    after :func:`aft_push`. Keys outside the cache have w = 0 (the running sums).
    """
    dt = state.num.dtype
    if state.keys.shape[-2] == 0:  # aft_simple: the running sums are everything
        return torch.sigmoid(q.to(dt)) * (state.num / state.den)
    logits = state.keys + bias.to(dt)[None, :, :, None]  # [B, H, n, Dh]
    top = torch.maximum(state.run_max, logits.amax(-2, keepdim=True))
    e = torch.exp(logits - top)
    scale = torch.exp(state.run_max - top)
    num = state.num * scale + (e * state.values).sum(-2, keepdim=True)
    den = state.den * scale + e.sum(-2, keepdim=True)
    return torch.sigmoid(q.to(dt)) * (num / den)
