"""Exact softmax attention in float64 (the reference of the tests), and the [B, 1, L, L]
may-attend mask the naive forms share (FAVOR+'s are in :mod:`favor.naive`, AFT's in
:mod:`aft.naive`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def allowed_pairs(length: int, causal: bool, mask: Tensor | None, batch: int) -> Tensor:
    """[B, 1, L, L] bool: may query i attend to key j?"""
    allowed = torch.ones(batch, 1, length, length, dtype=torch.bool)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool).tril()
    if mask is not None:
        allowed = allowed & mask.cpu()[:, None, None, :]
    return allowed


def exact_attention_reference(
    q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False, mask: Tensor | None = None
) -> Tensor:
    """softmax(Q K^T / sqrt(d)) V in float64; q, k, v [B, H, L, D]."""
    q, k, v = (t.detach().cpu().double() for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    allowed = allowed_pairs(q.shape[2], causal, mask, q.shape[0])
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v
