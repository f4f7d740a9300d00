"""One pre-LayerNorm Transformer block: x + Attn(LN(x)), then x + FFN(LN(x))."""

from __future__ import annotations

from torch import Tensor, nn

from protein_performer.attention import build_attention
from protein_performer.attention.base import Rotary
from protein_performer.model.config import ModelConfig


class FeedForward(nn.Module):
    """Linear(D, F) -> GELU -> Linear(F, D) -> dropout; ``fc2`` is a residual projection."""

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.fc2(self.act(self.fc1(x))))


class Block(nn.Module):
    """Pre-LN block; the attention kind comes from ``cfg.attention`` through the registry."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = build_attention(cfg.attention, cfg.d_model, cfg.n_heads)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.ff = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout)

    def forward(
        self, x: Tensor, mask: Tensor | None = None, rotary: Rotary | None = None
    ) -> Tensor:
        """x [B, L, D], mask [B, L] (True = real token) -> [B, L, D]."""
        x = x + self.drop(self.attn(self.norm1(x), mask, rotary))
        return x + self.ff(self.norm2(x))

    def step(self, x: Tensor, state, rotary: Rotary | None = None) -> Tensor:
        """One token x [B, 1, D] through the block, updating its attention's decoding state."""
        x = x + self.drop(self.attn.step(self.norm1(x), state, rotary))
        return x + self.ff(self.norm2(x))

    def suffix(self, x: Tensor, state, rotary: Rotary | None = None) -> Tensor:
        """n tokens x [B, n, D] after the prefix in ``state`` through the block (state kept)."""
        x = x + self.drop(self.attn.suffix(self.norm1(x), state, rotary))
        return x + self.ff(self.norm2(x))

    def residual_projections(self) -> list[nn.Linear]:
        """The layers that write into the residual stream (scaled down at init)."""
        return [self.attn.to_out, self.ff.fc2]
