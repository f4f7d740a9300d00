"""Token-by-token decoding of exact attention: a KV cache (O(t) memory, O(t) time per token;
the price of exact attention). :func:`exact_step` takes the newest token's q, k, v
``[B, H, 1, Dh]`` (rotary already applied), updates the cache and returns ``[B, H, 1, Dh]``:
row t of the causal forward."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from protein_performer.attention.base import DecodingState


@dataclass
class KVCache(DecodingState):
    """Keys and values of every past token, ``[B, H, T, Dh]``, in a buffer grown by doubling
    (an append costs O(1) amortised instead of a full copy per token)."""

    k_buf: Tensor | None = None
    v_buf: Tensor | None = None
    length: int = 0

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add k, v [B, H, n, Dh]; returns views of all cached keys and values."""
        n = k.shape[-2]
        if self.k_buf is None or self.length + n > self.k_buf.shape[-2]:
            cap = max(16, 2 * (self.length + n))
            k_new = k.new_empty(k.shape[:2] + (cap, k.shape[-1]))
            v_new = v.new_empty(v.shape[:2] + (cap, v.shape[-1]))
            if self.k_buf is not None:
                k_new[:, :, : self.length] = self.k_buf[:, :, : self.length]
                v_new[:, :, : self.length] = self.v_buf[:, :, : self.length]
            self.k_buf, self.v_buf = k_new, v_new
        self.k_buf[:, :, self.length : self.length + n] = k
        self.v_buf[:, :, self.length : self.length + n] = v
        self.length += n
        return self.k_buf[:, :, : self.length], self.v_buf[:, :, : self.length]


def exact_step(q: Tensor, k: Tensor, v: Tensor, state: KVCache) -> Tensor:
    """softmax(q K^T / sqrt(d)) V over the cached keys (the newest included)."""
    keys, values = state.append(k, v)
    state.position += 1
    scores = (q @ keys.transpose(-1, -2)) * q.shape[-1] ** -0.5  # [B, H, 1, T]
    return scores.softmax(dim=-1) @ values


def exact_suffix(q: Tensor, k: Tensor, v: Tensor, state: KVCache) -> Tensor:
    """n tokens q, k, v [B, H, n, Dh] after the cached prefix at once -> [B, H, n, Dh]: each
    sees every cached key and the suffix keys up to itself (``state`` untouched)."""
    n, prefix = q.shape[-2], state.length
    if prefix:
        k = torch.cat([state.k_buf[:, :, :prefix].to(k.dtype), k], dim=-2)
        v = torch.cat([state.v_buf[:, :, :prefix].to(v.dtype), v], dim=-2)
    allowed = torch.ones(n, prefix + n, dtype=torch.bool, device=q.device).tril(prefix)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
