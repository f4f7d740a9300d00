"""Random-feature maps phi(x) [..., L, d] -> [..., L, m] of FAVOR+.

* softmax: positive features phi(x) = exp(w.x' - |x'|^2/2) / sqrt(m), x' = x d^-1/4, so that
  E[phi(q).phi(k)] = exp(q.k / sqrt(d)) (unbiased, Lemma 1 of the paper). A stabiliser is
  subtracted inside the exp (per row for queries, shared over keys) and ``eps`` added:
  phi(x) = (exp(w.x' - |x'|^2/2 - max) + eps) / sqrt(m).
* generalized: phi(x) = f(x W^T / sqrt(m)) + eps (Performer-ReLU: f = relu, eps = 1e-3), as in
  the authors' reference code. ``f`` is pluggable.

These are the readable forms (tests, analysis); the fast paths fuse them into their loops. The
kernel objects (name, paper eps, the paths that compute attention) are in :mod:`favor.kernels`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

SOFTMAX_EPS = 1e-6
RELU_EPS = 1e-3


def softmax_logits(x: Tensor, projection: Tensor) -> Tensor:
    """log of the unstabilised positive features times sqrt(m): w.x' - |x'|^2/2.

    x [..., L, d], projection [m, d] -> [..., L, m].
    """
    d = x.shape[-1]
    xs = x * d**-0.25
    return xs @ projection.transpose(-1, -2) - 0.5 * (xs * xs).sum(-1, keepdim=True)


def positive_random_features(x: Tensor, projection: Tensor) -> Tensor:
    """Unstabilised softmax features exp(w.x' - |x'|^2/2)/sqrt(m); phi(q).phi(k) estimates
    exp(q.k/sqrt(d)) without bias. For tests and analysis; overflows for large inputs."""
    m = projection.shape[0]
    return torch.exp(softmax_logits(x, projection) - 0.5 * math.log(m))


def softmax_query_features(x: Tensor, projection: Tensor, eps: float = SOFTMAX_EPS) -> Tensor:
    """Query features with a per-row stabiliser (it cancels in the attention ratio)."""
    m = projection.shape[0]
    logits = softmax_logits(x, projection)
    stab = logits.amax(dim=-1, keepdim=True)
    return (torch.exp(logits - stab) + eps) * m**-0.5


def softmax_key_features(
    x: Tensor, projection: Tensor, eps: float = SOFTMAX_EPS, mask: Tensor | None = None
) -> Tensor:
    """Key features with one stabiliser shared by all keys of a sequence (bidirectional use).

    x [B, H, L, d]; mask [B, L] (True = real) -> [B, H, L, m], zero on padded keys. The
    stabiliser is the maximum over real keys and features, per (batch, head).
    """
    m = projection.shape[0]
    logits = softmax_logits(x, projection)
    if mask is not None:
        logits = logits.masked_fill(~mask[:, None, :, None], float("-inf"))
    stab = logits.amax(dim=(-2, -1), keepdim=True).clamp_min(-1e4)
    feats = (torch.exp(logits - stab) + eps) * m**-0.5
    if mask is not None:
        feats = feats * mask[:, None, :, None].to(feats.dtype)
    return feats


def generalized_kernel_features(
    x: Tensor,
    projection: Tensor,
    fn: Callable[[Tensor], Tensor] = torch.relu,
    eps: float = RELU_EPS,
    mask: Tensor | None = None,
) -> Tensor:
    """phi(x) = fn(x W^T / sqrt(m)) + eps, [B, H, L, d] -> [B, H, L, m]; zero on padded keys."""
    m = projection.shape[0]
    feats = fn(x @ (projection.transpose(-1, -2) * m**-0.5)) + eps
    if mask is not None:
        feats = feats * mask[:, None, :, None].to(feats.dtype)
    return feats
