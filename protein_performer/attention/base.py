"""The interface every attention kind implements: [B, L, D] -> [B, L, D], and the base of
the per-kind token-by-token decoding states."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from protein_performer.attention.config import AttentionConfig

Rotary = Callable[[Tensor], Tensor]  # [B, H, L, Dh] -> [B, H, L, Dh]


@dataclass
class DecodingState:
    """Base of the per-layer states; ``position`` = tokens consumed so far."""

    position: int = 0

    def tensors(self) -> list[Tensor]:
        """The state's tensors (to measure its size)."""
        return [v for v in vars(self).values() if isinstance(v, Tensor)]

    def numel(self) -> int:
        return sum(t.numel() for t in self.tensors())

    def select(self, index: Tensor) -> DecodingState:
        """A new state holding rows ``index`` [N] of this one (rows repeat freely): every
        tensor field indexed along its first (batch) dimension, copied."""
        picked = {
            name: value.index_select(0, index)
            for name, value in vars(self).items()
            if isinstance(value, Tensor) and value.dim() > 0
        }
        return dataclasses.replace(self, **picked)


class Attention(nn.Module):
    """Multi-head attention layer base: q/k/v/output projections and head reshapes.

    Subclasses implement :meth:`attend` (the mechanism on per-head tensors) and
    :meth:`attend_matrix` (the [B, H, L, L] matrix it implies, for analysis only).

    ``mask``: BoolTensor [B, L], True on real tokens, False on padding. Padded keys
    contribute nothing; outputs at padded queries are unspecified but finite.
    """

    #: Memory grows linearly with the sequence length (no [L, L] matrix is formed), so a
    #: sequence longer than training's can run in one pass (whole-protein embeddings).
    linear_memory: bool = False
    #: Learned tables of ``cfg.max_length`` rows fix the longest sequence the layer accepts.
    length_limited: bool = False

    def __init__(self, cfg: AttentionConfig, d_model: int, n_heads: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"model.d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        # a model fills these from its own (ModelConfig); a layer built alone must be told
        if cfg.causal is None:
            raise ValueError(
                f"attention.causal is unset: give AttentionConfig(kind={cfg.kind!r}, causal=...) "
                "for a layer built alone (inside a model, ModelConfig sets it from model.causal)"
            )
        if getattr(self, "length_limited", False) and cfg.max_length is None:
            raise ValueError(
                f"attention.max_length is unset: {cfg.kind} keeps length-sized tables; give "
                "AttentionConfig(max_length=...) (inside a model, ModelConfig sets it)"
            )
        self.cfg = cfg
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.causal = cfg.causal
        self.to_q = nn.Linear(d_model, d_model)
        self.to_k = nn.Linear(d_model, d_model)
        self.to_v = nn.Linear(d_model, d_model)
        self.to_out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(cfg.dropout)

    def project(self, x: Tensor, rotary: Rotary | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """x [B, L, D] -> q, k, v each [B, H, L, Dh] (rotary applied to q and k)."""
        q, k, v = (self._split(p(x)) for p in (self.to_q, self.to_k, self.to_v))
        if rotary is not None:
            q, k = rotary(q), rotary(k)
        return q, k, v

    def _split(self, t: Tensor) -> Tensor:
        b, l, _ = t.shape
        return t.view(b, l, self.n_heads, self.head_dim).transpose(1, 2)  # [B, H, L, Dh]

    def forward(
        self, x: Tensor, mask: Tensor | None = None, rotary: Rotary | None = None
    ) -> Tensor:
        q, k, v = self.project(x, rotary)
        out = self.attend(q, k, v, mask)  # [B, H, L, Dh]
        out = out.transpose(1, 2).reshape(x.shape)  # [B, L, D]
        return self.dropout(self.to_out(out))

    @torch.no_grad()
    def attention_matrix(
        self, x: Tensor, mask: Tensor | None = None, rotary: Rotary | None = None
    ) -> Tensor:
        """The [B, H, L, L] attention matrix this layer implies on x (rows sum to 1)."""
        q, k, v = self.project(x, rotary)
        return self.attend_matrix(q, k, mask)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        raise NotImplementedError

    def attend_matrix(self, q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
        raise NotImplementedError

    # -- token-by-token decoding (generation); the math lives beside each kind
    # (favor/decoding.py, aft/decoding.py, exact/decoding.py)

    def init_state(self, batch: int, device: torch.device, dtype: torch.dtype):
        """A fresh decoding state for ``batch`` sequences (causal layers only)."""
        self.check_decodable()
        return self._init_state(batch, device, dtype)

    def check_decodable(self) -> None:
        if not self.causal:
            raise ValueError(
                f"{self.cfg.kind} attention is bidirectional: token-by-token decoding (generation) "
                "needs a causal layer, i.e. a model trained with objective=clm"
            )

    def step(self, x: Tensor, state, rotary: Rotary | None = None) -> Tensor:
        """x [B, 1, D], the token at position ``state.position`` -> [B, 1, D]; updates state.

        ``rotary`` must rotate at that position (the model passes it)."""
        q, k, v = self.project(x, rotary)
        out = self.decode(q, k, v, state).to(x.dtype)  # [B, H, 1, Dh]
        return self.dropout(self.to_out(out.transpose(1, 2).reshape(x.shape)))

    def suffix(self, x: Tensor, state, rotary: Rotary | None = None) -> Tensor:
        """x [B, n, D], the tokens at positions ``state.position`` .. + n - 1 after the prefix
        held by ``state`` -> [B, n, D], as rows ``position..`` of the causal forward; ``state``
        is left as it was. ``rotary`` must rotate from that position (the model passes it)."""
        q, k, v = self.project(x, rotary)
        out = self.attend_suffix(q, k, v, state).to(x.dtype)  # [B, H, n, Dh]
        return self.dropout(self.to_out(out.transpose(1, 2).reshape(x.shape)))

    def attend_suffix(self, q: Tensor, k: Tensor, v: Tensor, state) -> Tensor:
        """q, k, v [B, H, n, Dh] of n tokens after the prefix in ``state`` -> [B, H, n, Dh],
        ``state`` untouched. Here: :meth:`decode` token by token on a copy of the state;
        kinds override it with a pass over all n tokens at once."""
        state = state.select(torch.arange(q.shape[0], device=q.device))
        outs = [
            self.decode(q[:, :, i : i + 1], k[:, :, i : i + 1], v[:, :, i : i + 1], state)
            for i in range(q.shape[2])
        ]
        return torch.cat(outs, dim=2)

    def _init_state(self, batch: int, device: torch.device, dtype: torch.dtype):
        raise NotImplementedError(
            f"attention kind {self.cfg.kind!r} has no token-by-token decoding"
        )

    def decode(self, q: Tensor, k: Tensor, v: Tensor, state) -> Tensor:
        """One token's q, k, v [B, H, 1, Dh] -> output [B, H, 1, Dh]; updates state."""
        raise NotImplementedError(
            f"attention kind {self.cfg.kind!r} has no token-by-token decoding"
        )

    def maybe_redraw(self, step: int) -> bool:
        """Called once per training step; returns True when random features were redrawn."""
        return False

    def assign_layer_id(self, layer_id: int) -> None:
        """Told by the holding model (its block index). Layers with seeded random features
        (FAVOR+) derive their draws from it, so that two identically configured models draw
        identical features whatever else a process built before; the others ignore it."""
