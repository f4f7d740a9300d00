"""A tiny stand-in model with PerformerLM's ``cfg`` sizes and ``run(attention_layers=...)``
(exact softmax attention of random weights)."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from protein_performer.model.outputs import ModelOutputs


class ToyAttentionModel(nn.Module):
    def __init__(
        self, n_layers: int = 2, n_heads: int = 3, d: int = 8, max_length: int = 64, seed: int = 0
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.cfg = SimpleNamespace(n_layers=n_layers, n_heads=n_heads, max_length=max_length)
        self.embed = nn.Parameter(torch.randn(31, d, generator=g))
        self.wq = nn.Parameter(torch.randn(n_layers, n_heads, d, d, generator=g))
        self.wk = nn.Parameter(torch.randn(n_layers, n_heads, d, d, generator=g))

    @torch.no_grad()
    def run(self, tokens, mask, *, attention_layers=(), **_) -> ModelOutputs:
        x = self.embed[tokens]  # [B, L, d]
        out = ModelOutputs()
        for layer in attention_layers:
            q = torch.einsum("bld,hde->bhle", x, self.wq[layer])
            k = torch.einsum("bld,hde->bhle", x, self.wk[layer])
            s = q @ k.transpose(-1, -2) / 2.0
            s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
            out.attention[layer] = torch.softmax(s, dim=-1)  # [B, H, L, L]
        return out
