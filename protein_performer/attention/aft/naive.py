"""Direct float64 implementations of the AFT formula (Zhai et al., 2021), for tests.

Quadratic and loop-based on purpose: no stabilising shifts, no chunking, no conv tricks.
"""

from __future__ import annotations

import torch
from torch import Tensor


def aft_reference(
    q: Tensor, k: Tensor, v: Tensor, w: Tensor, causal: bool = False, mask: Tensor | None = None
) -> Tensor:
    """Y_t = sigmoid(Q_t) * sum_t' exp(K_t' + w_tt') V_t' / sum_t' exp(K_t' + w_tt').

    q, k, v [B, H, L, Dh]; w [L, L] or [H, L, L]; causal keeps t' <= t; mask [B, L] drops
    padded keys. Returns float64 [B, H, L, Dh].
    """
    weights = aft_weights_reference(k, w, causal, mask)  # [B, H, Dh, L, L]
    v64 = v.double().transpose(-1, -2)[..., None, :]  # [B, H, Dh, 1, L]
    avg = (weights * v64).sum(-1).transpose(-1, -2)  # [B, H, L, Dh]
    return torch.sigmoid(q.double()) * avg


def aft_weights_reference(
    k: Tensor, w: Tensor, causal: bool = False, mask: Tensor | None = None
) -> Tensor:
    """Per-channel weights exp(K_t' + w_tt') / sum_t'' exp(K_t'' + w_tt''): [B, H, Dh, L, L]."""
    b, h, n, d = k.shape
    w = w.double()
    if w.dim() == 2:
        w = w[None]
    allowed = torch.ones(b, 1, 1, n, n, dtype=torch.bool)
    if causal:
        allowed = allowed & torch.ones(n, n, dtype=torch.bool).tril()
    if mask is not None:
        allowed = allowed & mask[:, None, None, None, :].cpu()
    # exp(K_t' + w_tt') directly, zero where not allowed.
    num = torch.exp(k.double().transpose(-1, -2)[..., None, :] + w[None, :, None])
    num = torch.where(allowed.to(num.device), num, torch.zeros_like(num))
    return num / num.sum(-1, keepdim=True)


def factorised_bias(u: Tensor, v: Tensor, length: int) -> Tensor:
    """AFT-full w_tt' = u_t . v_t' [L, L], by explicit loops."""
    w = torch.zeros(length, length, dtype=torch.float64)
    for t in range(length):
        for s in range(length):
            w[t, s] = (u[t].double() * v[s].double()).sum()
    return w


def local_bias(band: Tensor, window: int, length: int) -> Tensor:
    """AFT-local dense w from a band table band[t, o + window - 1] = w_{t, t+o}; 0 outside."""
    w = torch.zeros(length, length, dtype=torch.float64)
    for t in range(length):
        for s in range(length):
            if abs(t - s) < window:
                w[t, s] = band[t, s - t + window - 1].double()
    return w


def conv_bias(kernel: Tensor, length: int, causal: bool) -> Tensor:
    """AFT-conv dense per-head w [H, L, L]: kernel[h, t' - t + pad] inside, 0 outside.

    pad = K - 1 when causal (offsets -(K-1)..0), else (K - 1) // 2 (centred).
    """
    h, ks = kernel.shape
    pad = ks - 1 if causal else (ks - 1) // 2
    w = torch.zeros(h, length, length, dtype=torch.float64)
    for t in range(length):
        for s in range(length):
            j = s - t + pad
            if 0 <= j < ks:
                w[:, t, s] = kernel[:, j].double()
    return w


def causal_simple_quadratic(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """AFT-simple causal in the quadratic masked form, via log-sum-exp (robust to any K range)."""
    return torch.sigmoid(q.double()) * causal_prefix_softmax_quadratic(k, v, mask)


def causal_prefix_softmax_quadratic(k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """sum_{t'<=t} softmax_t'(K) V_t' per channel over the real keys t' <= t, as a masked
    [L, L] softmax in float64 (differentiable); 0 on rows without a visible real key."""
    b, h, n, d = k.shape
    scores = k.double().transpose(-1, -2)[..., None, :].expand(b, h, d, n, n)
    allowed = torch.ones(n, n, dtype=torch.bool).tril()[None, None, None]
    if mask is not None:
        allowed = allowed & mask[:, None, None, None, :]
    scores = scores.masked_fill(~allowed, float("-inf"))
    # Rows without an allowed key: a 0 logit (any finite value) with its weight zeroed after.
    live = allowed.any(-1, keepdim=True)
    weights = scores.masked_fill(~live, 0.0).softmax(-1) * live
    return (weights * v.double().transpose(-1, -2)[..., None, :]).sum(-1).transpose(-1, -2)
