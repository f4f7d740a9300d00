"""Positions: a learned absolute table (the paper's) and rotary embeddings (RoPE)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LearnedPositions(nn.Module):
    """A learned table of ``max_length`` position vectors; ``forward(L) -> [L, D]``."""

    def __init__(self, max_length: int, d_model: int) -> None:
        super().__init__()
        self.max_length = max_length
        self.table = nn.Embedding(max_length, d_model)

    def forward(self, length: int) -> Tensor:
        idx = torch.arange(length, device=self.table.weight.device)
        return self.table(idx)  # [L, D]


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (Su et al. 2021), "rotate half" layout (GPT-NeoX).

    Called on q or k ``[B, H, L, Dh]`` -> same shape; the angles are computed in float32
    (a bf16 angle of position 1000 is off by several radians) and the result cast back.
    """

    def __init__(self, head_dim: int, max_length: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
        self.head_dim = head_dim
        self.max_length = max_length
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        angles = torch.arange(max_length, dtype=torch.float64)[:, None] * inv_freq[None, :]
        angles = torch.cat([angles, angles], dim=-1)  # [Lmax, Dh]
        # derived, not learned: kept out of the state dict; float64 so that a float64 model
        # rotates exactly (the forward casts them to its compute dtype)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[-2]
        dt = torch.float64 if x.dtype == torch.float64 else torch.float32
        cos, sin = self.cos[:length].to(dt), self.sin[:length].to(dt)  # [L, Dh]
        xf = x.to(dt)
        half = self.head_dim // 2
        rotated = torch.cat([-xf[..., half:], xf[..., :half]], dim=-1)
        return (xf * cos + rotated * sin).to(x.dtype)
