"""Exact softmax attention (the Transformer baseline) through fused SDPA."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from protein_performer.attention.base import Attention
from protein_performer.attention.exact import decoding
from protein_performer.attention.registry import register


def sdpa_mask(
    mask: Tensor | None, causal: bool, length: int, device: torch.device
) -> Tensor | None:
    """Boolean [B, 1, L, L] (or [L, L]) mask for SDPA, True where attention is allowed."""
    allowed = None
    if mask is not None:
        allowed = mask[:, None, None, :]  # [B, 1, 1, L] keys
    if causal:
        tri = torch.ones(length, length, dtype=torch.bool, device=device).tril()
        allowed = tri if allowed is None else allowed & tri
    return allowed


@register("exact")
class ExactAttention(Attention):
    """softmax(Q K^T / sqrt(d)) V, bidirectional or causal, padded keys excluded."""

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        if mask is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        allowed = sdpa_mask(mask, self.causal, q.shape[-2], q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)

    def attend_matrix(self, q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
        # float32 at least (the matrix is for analysis), float64 kept for tests.
        dt = torch.float64 if q.dtype == torch.float64 else torch.float32
        scores = (q.to(dt) @ k.to(dt).transpose(-1, -2)) * q.shape[-1] ** -0.5
        allowed = sdpa_mask(mask, self.causal, q.shape[-2], q.device)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        return scores.softmax(dim=-1)

    def _init_state(self, batch: int, device: torch.device, dtype: torch.dtype):
        return decoding.KVCache()

    def decode(self, q: Tensor, k: Tensor, v: Tensor, state) -> Tensor:
        return decoding.exact_step(q, k, v, state)

    def attend_suffix(self, q: Tensor, k: Tensor, v: Tensor, state) -> Tensor:
        return decoding.exact_suffix(q, k, v, state)
