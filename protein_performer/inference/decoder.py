"""Recurrent (token-by-token) decoding of a causal :class:`PerformerLM`.

:class:`RecurrentDecoder` feeds one token per sequence at a time through the same weights as
``PerformerLM.forward``: token embedding + the position (learned table row, or rotary at
position t), each block's :meth:`Block.step` on its attention's decoding state
(``decoding.py`` beside each attention kind), final norm + head. The logits of step t equal
row t of the full causal forward (tested in float64 to 1e-10). A prompt is consumed through
the same step path, so there is no separate prefill to keep consistent.
"""

from __future__ import annotations

import torch
from torch import Tensor

from protein_performer.model.embeddings import RotaryEmbedding, position_angles
from protein_performer.model.lm import PerformerLM


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


class RecurrentDecoder:
    """Decoding states of all blocks for ``batch`` sequences decoded in lockstep.

    ``step(tokens [B]) -> logits [B, V]`` for the token at :attr:`position` (then advanced).
    Run the model in eval mode (dropout off) for reproducible logits.
    """

    def __init__(self, model: PerformerLM, batch: int) -> None:
        if not model.cfg.causal:
            raise ValueError(
                "generation needs a causal model (trained with objective=clm); this one is "
                "bidirectional (masked LM): it cannot predict the next token"
            )
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.model = model
        self.batch = batch
        weight = model.token_embedding.weight
        self.states = [
            block.attn.init_state(batch, weight.device, weight.dtype) for block in model.blocks
        ]
        self.position = 0

    @property
    def max_length(self) -> int:
        return self.model.cfg.max_length

    @torch.no_grad()
    def step(self, tokens: Tensor) -> Tensor:
        """tokens [B] long (the next token of every sequence) -> next-token logits [B, V]."""
        if tokens.shape != (self.batch,):
            raise ValueError(f"tokens must be [{self.batch}], got shape {tuple(tokens.shape)}")
        if self.position >= self.max_length:
            raise ValueError(
                f"position {self.position} is past model.max_length {self.max_length}: the "
                "model cannot take longer sequences"
            )
        model, t = self.model, self.position
        x = model.token_embedding(tokens[:, None])  # [B, 1, D]
        if model.positions is not None:
            x = x + model.positions.at(t)
        x = model.drop(x)
        rotary = None
        if model.rotary is not None:

            def rotary(y: Tensor) -> Tensor:
                return rotate_at(model.rotary, y, t)

        for block, state in zip(model.blocks, self.states):
            x = block.step(x, state, rotary)
        self.position += 1
        return model.logits(x)[:, 0]

    def state_numel(self) -> int:
        """Elements held by all decoding states (to check what grows with length)."""
        return sum(state.numel() for state in self.states)
