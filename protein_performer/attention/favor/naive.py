"""Naive O(L^2) float64 forms of FAVOR+, the references of the tests.

Written for clarity, not speed: explicit matrices, a Python loop over query positions where
the causal stabiliser differs per query. Do not use on long sequences.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from protein_performer.attention.favor.kernels import FeatureKernel, SoftmaxKernel, resolve_kernel
from protein_performer.attention.reference import allowed_pairs


def favor_attention_matrix_reference(
    q: Tensor,
    k: Tensor,
    projection: Tensor,
    *,
    kernel: str | Callable[[Tensor], Tensor] | FeatureKernel = "softmax",
    causal: bool = False,
    mask: Tensor | None = None,
    eps: float | None = None,
) -> Tensor:
    """[B, H, L, L] normalised phi(Q) phi(K)^T in float64, built entry by entry.

    Softmax kernel: phi(q_i) = (exp(l(q_i) - max_f l(q_i)) + eps)/sqrt(m); the key features
    seen by query i are (exp(l(k_j) - M_i) + eps)/sqrt(m), M_i = max of l over the real keys
    query i may see (all of them, or j <= i when causal).
    Generalized kernels: f(x W^T/sqrt m) + eps.
    """
    kern = resolve_kernel(kernel)
    eps = kern.default_eps if eps is None else eps
    q, k, w = (t.detach().cpu().double() for t in (q, k, projection))
    b, h, length, d = q.shape
    m = w.shape[0]
    allowed = allowed_pairs(length, causal, mask, b).expand(b, h, length, length)
    if isinstance(kern, SoftmaxKernel):

        def logits(x: Tensor) -> Tensor:
            xs = x * d**-0.25
            return xs @ w.T - (xs * xs).sum(-1, keepdim=True) / 2

        lq, lk = logits(q), logits(k)  # [B, H, L, m]
        phi_q = (torch.exp(lq - lq.amax(-1, keepdim=True)) + eps) / math.sqrt(m)
        mat = torch.zeros(b, h, length, length, dtype=torch.float64)
        for i in range(length):
            seen = allowed[:, :, i, :]  # [B, H, L]
            stab = lk.masked_fill(~seen[..., None], float("-inf")).amax(dim=(-2, -1))  # [B, H]
            phi_k = (torch.exp(lk - stab[..., None, None]) + eps) / math.sqrt(m)  # [B, H, L, m]
            mat[:, :, i, :] = (phi_k @ phi_q[:, :, i, :, None])[..., 0]
    else:

        def feats(x: Tensor) -> Tensor:
            return kern.fn(x @ w.T / math.sqrt(m)) + eps

        mat = feats(q) @ feats(k).transpose(-1, -2)
    mat = mat * allowed
    return mat / mat.sum(-1, keepdim=True)


def favor_attention_reference(
    q: Tensor, k: Tensor, v: Tensor, projection: Tensor, **kwargs
) -> Tensor:
    """FAVOR+ output through the explicit matrix: float64 [B, H, L, Dv]."""
    return favor_attention_matrix_reference(q, k, projection, **kwargs) @ v.detach().cpu().double()


def softmax_kernel_reference(x: Tensor, y: Tensor) -> Tensor:
    """exp(x . y / sqrt(d)) for x [..., d], y [..., d] (the kernel FAVOR+ softmax estimates)."""
    x, y = x.double(), y.double()
    return torch.exp((x * y).sum(-1) / math.sqrt(x.shape[-1]))
