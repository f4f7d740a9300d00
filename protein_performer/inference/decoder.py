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

from protein_performer.model.embeddings import rotate_at
from protein_performer.model.lm import PerformerLM

__all__ = ["RecurrentDecoder", "rotate_at"]


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
        self.states = model.decoding_states(batch)
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
        logits = self.model.run_step(tokens[:, None], self.states)
        self.position += 1
        return logits[:, 0]

    def state_numel(self) -> int:
        """Elements held by all decoding states (to check what grows with length)."""
        return sum(state.numel() for state in self.states)
