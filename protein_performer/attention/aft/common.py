"""Shared pieces of the AFT kinds: compute dtype, key masks, stabilised exp(K), ratios."""

from __future__ import annotations

import torch
from torch import Tensor


def compute_dtype(t: Tensor) -> torch.dtype:
    """float64 stays float64 (tests); everything else accumulates in float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def smallest_normal(t: Tensor) -> float:
    return torch.finfo(t.dtype).tiny


def key_mask(mask: Tensor | None) -> Tensor | None:
    """[B, L] -> [B, 1, L, 1] broadcastable over heads and channels."""
    return None if mask is None else mask[:, None, :, None]


def shift_exp_keys(k: Tensor, mask: Tensor | None) -> Tensor:
    """exp(K - max_real_keys K) per channel, 0 on padded keys. k [B, H, L, Dh]."""
    km = key_mask(mask)
    masked = k if km is None else k.masked_fill(~km, float("-inf"))
    m = masked.detach().amax(dim=-2, keepdim=True)  # [B, H, 1, Dh]
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # all keys padded
    # masked_fill(-inf) before exp: padded entries give exp = 0 and zero gradient (no inf * 0).
    x = k - m
    if km is not None:
        x = x.masked_fill(~km, float("-inf"))
    return x.exp_()  # in place: x is a fresh temporary


def prefix_or_total(x: Tensor, causal: bool) -> Tensor:
    """Sum over keys (dim -2): prefix sums when causal, else the total broadcast to all rows."""
    return x.cumsum(dim=-2) if causal else x.sum(dim=-2, keepdim=True)


def ratio(num: Tensor, den: Tensor) -> Tensor:
    return num / den.clamp_min(smallest_normal(den))


# Rows per chunk of the causal AFT-simple scan: fewer chunks cost less Python overhead, smaller
# ones keep the cumsum's [C, Dh] planes in cache. Measured on CPU (B 1, H 8, Dh 64, float32,
# L 8192 and 32768): 192-384 within noise, 128 5-25% slower, 64 ~40% slower.
