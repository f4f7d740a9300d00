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

    Called on q or k ``[B, H, L, Dh]`` -> same shape; the tables are computed in float64 and
    the rotation runs in float32 (a bf16 angle of position 1000 is off by several radians), or
    in float64 for a float64 input, and the result is cast back. Lengths beyond the cached
    ``max_length`` rows get tables made afresh (whole-protein inference of long proteins).
    """

    def __init__(self, head_dim: int, max_length: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
        self.head_dim = head_dim
        self.max_length = max_length
        self.base = base
        cos, sin = self._tables(max_length, torch.device("cpu"))
        # derived, not learned: kept out of the state dict; float32 (MPS has no float64), a
        # float64 input gets tables made afresh in float64 (see forward)
        self.register_buffer("cos", cos.float(), persistent=False)
        self.register_buffer("sin", sin.float(), persistent=False)

    def _tables(self, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """cos and sin of the angles [length, Dh], computed in float64."""
        half = torch.arange(0, self.head_dim, 2, dtype=torch.float64, device=device)
        inv_freq = 1.0 / (self.base ** (half / self.head_dim))
        angles = torch.arange(length, dtype=torch.float64, device=device)[:, None] * inv_freq
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos(), angles.sin()

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[-2]
        if x.dtype == torch.float64:  # exact rotation for float64 models (tests, gradchecks)
            cos, sin = self._tables(length, x.device)
            xf = x
        else:
            if length <= self.cos.shape[0]:
                cos, sin = self.cos[:length].float(), self.sin[:length].float()  # [L, Dh]
            else:  # made on the CPU in float64 (MPS has none), then cast as the cache is
                cos, sin = (
                    t.to(x.device, torch.float32) for t in self._tables(length, torch.device("cpu"))
                )
            xf = x.float()
        half = self.head_dim // 2
        rotated = torch.cat([-xf[..., half:], xf[..., :half]], dim=-1)
        return (xf * cos + rotated * sin).to(x.dtype)
