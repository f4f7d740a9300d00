"""A tiny stand-in model with ``attention_maps`` (exact softmax attention of random weights)."""

from __future__ import annotations

import torch
from torch import nn


class ToyAttentionModel(nn.Module):
    def __init__(
        self, n_layers: int = 2, n_heads: int = 3, d: int = 8, max_length: int = 64, seed: int = 0
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.max_length = max_length
        self.embed = nn.Parameter(torch.randn(31, d, generator=g))
        self.wq = nn.Parameter(torch.randn(n_layers, n_heads, d, d, generator=g))
        self.wk = nn.Parameter(torch.randn(n_layers, n_heads, d, d, generator=g))

    @torch.no_grad()
    def attention_maps(self, tokens, mask, layers=None):
        x = self.embed[tokens]  # [B, L, d]
        out = []
        for layer in range(self.wq.shape[0]) if layers is None else layers:
            q = torch.einsum("bld,hde->bhle", x, self.wq[layer])
            k = torch.einsum("bld,hde->bhle", x, self.wk[layer])
            s = q @ k.transpose(-1, -2) / 2.0
            s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
            out.append(torch.softmax(s, dim=-1))  # [B, H, L, L]
        return out
