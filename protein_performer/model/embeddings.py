"""Positions: a learned absolute table (the paper's), a fixed sinusoidal one, rotary (RoPE)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def position_angles(
    start: int, stop: int, dim: int, base: float = 10000.0, device: torch.device | None = None
) -> Tensor:
    """float64 ``[stop - start, ceil(dim / 2)]``: position ``p`` times ``base^(-2i / dim)``, the
    angles of sinusoidal and rotary positions (computed in float64: a bf16 or float32 angle of a
    far position is off by a lot)."""
    half = torch.arange(0, dim, 2, dtype=torch.float64, device=device)
    inv_freq = 1.0 / (base ** (half / dim))
    return torch.arange(start, stop, dtype=torch.float64, device=device)[:, None] * inv_freq


class LearnedPositions(nn.Module):
    """A learned table of ``max_length`` position vectors; ``forward(L) -> [L, D]``."""

    def __init__(self, max_length: int, d_model: int) -> None:
        super().__init__()
        self.max_length = max_length
        self.table = nn.Embedding(max_length, d_model)

    def forward(self, length: int) -> Tensor:
        idx = torch.arange(length, device=self.table.weight.device)
        return self.table(idx)  # [L, D]

    def at(self, position: int) -> Tensor:
        """The vector of one position [D] (incremental decoding)."""
        return self.table.weight[position]


class SinusoidalPositions(nn.Module):
    """Fixed sine / cosine positions (Vaswani et al. 2017) times one learned scale.

    ``forward(L) -> [L, D]``. Dimension pair ``(2i, 2i+1)`` holds ``sin, cos`` of
    ``position / 10000^(2i/D)``. The table is derived (kept out of the state dict); the scalar
    ``scale`` starts where every entry has the RMS ``init_rms`` (the learned table's initial
    scale), so the positions neither drown the token embeddings at initialisation nor stay
    fixed in size while they grow.
    """

    def __init__(self, max_length: int, d_model: int, init_rms: float = 0.02) -> None:
        super().__init__()
        self.max_length = max_length
        self.d_model = d_model
        self.register_buffer("table", self._table(), persistent=False)
        self.init_rms = init_rms
        self.scale = nn.Parameter(torch.empty(()))
        self.reset_parameters()

    def _table(self) -> Tensor:
        angles = position_angles(0, self.max_length, self.d_model)
        table = torch.zeros(self.max_length, self.d_model, dtype=torch.float64)
        table[:, 0::2] = torch.sin(angles)
        table[:, 1::2] = torch.cos(angles)[:, : self.d_model // 2]
        return table.float()

    @torch.no_grad()
    def rebuild_tables(self) -> None:
        """Recompute the derived table in place (a loader may leave a placeholder)."""
        self.table.copy_(self._table())

    def reset_parameters(self) -> None:
        # sin^2 + cos^2 = 1 per pair: the table's entries have RMS 1/sqrt(2)
        with torch.no_grad():
            self.scale.fill_(self.init_rms * math.sqrt(2.0))

    def forward(self, length: int) -> Tensor:
        return self.scale * self.table[:length]  # [L, D]

    def at(self, position: int) -> Tensor:
        """The vector of one position [D] (incremental decoding)."""
        return self.scale * self.table[position]


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

    @torch.no_grad()
    def rebuild_tables(self) -> None:
        """Recompute the derived tables in place (a loader may leave placeholders)."""
        cos, sin = self._tables(self.max_length, torch.device("cpu"))
        self.cos.copy_(cos.float())
        self.sin.copy_(sin.float())

    def _tables(self, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """cos and sin of the angles [length, Dh], computed in float64."""
        angles = position_angles(0, length, self.head_dim, self.base, device)
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


def rotate_at(rotary: RotaryEmbedding, x: Tensor, position: int) -> Tensor:
    """Rotary embedding of x [B, H, n, Dh] holding positions position .. position+n-1.

    The same numbers as ``rotary(x)`` on the whole prefix: float32 models read the cached
    float32 tables, float64 ones compute the float64 angles the same way (``position_angles``).
    """
    n = x.shape[-2]
    if x.dtype == torch.float64:
        angles = position_angles(position, position + n, rotary.head_dim, rotary.base, x.device)
        angles = torch.cat([angles, angles], dim=-1)
        cos, sin, xf = angles.cos(), angles.sin(), x
    else:
        cos = rotary.cos[position : position + n].float()
        sin = rotary.sin[position : position + n].float()
        xf = x.float()
    half_dim = rotary.head_dim // 2
    rotated = torch.cat([-xf[..., half_dim:], xf[..., :half_dim]], dim=-1)
    return (xf * cos + rotated * sin).to(x.dtype)
