"""PerformerLM: a plain nn.Module protein language model (masked or causal)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from protein_performer.attention.base import Rotary
from protein_performer.model.block import Block
from protein_performer.model.config import ModelConfig
from protein_performer.model.embeddings import (
    LearnedPositions,
    RotaryEmbedding,
    SinusoidalPositions,
    rotate_at,
)
from protein_performer.model.outputs import ModelOutputs
from protein_performer.model.pretrained import read_pretrained_folder, save_folder
from protein_performer.objective import Objective

INIT_STD = 0.02


def _absolute_positions(cfg: ModelConfig) -> LearnedPositions | SinusoidalPositions | None:
    """The table added to the token embeddings (None: rotary positions, or none at all)."""
    if cfg.position == "learned":
        return LearnedPositions(cfg.max_length, cfg.d_model)
    if cfg.position == "sinusoidal":
        return SinusoidalPositions(cfg.max_length, cfg.d_model, init_rms=INIT_STD)
    return None


class PerformerLM(nn.Module):
    """Token embedding + positions -> pre-LN blocks -> final LayerNorm -> tied output head.

    ``forward(tokens [B, L] long, mask [B, L] bool | None) -> logits [B, L, V]``; ``mask`` is
    True on real tokens; padded keys are ignored by every attention kind, logits at padded
    positions are finite but meaningless. Causal when ``cfg.causal`` (position t sees <= t).

    Initialisation (GPT-2): weights ~ N(0, 0.02), the residual output projections (attention
    ``to_out`` and the FFN's second layer) ~ N(0, 0.02 / sqrt(2 n_layers)) so the residual
    stream's variance does not grow with depth, zero biases, unit LayerNorms.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.positions = _absolute_positions(cfg)
        self.rotary = (
            RotaryEmbedding(cfg.head_dim, cfg.max_length) if cfg.position == "rotary" else None
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        if cfg.tie_embeddings:
            self.head = None
            self.head_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        else:
            self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
            self.head_bias = None
        self.reset_parameters()
        for index, block in enumerate(self.blocks):
            block.attn.assign_layer_id(index)

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, INIT_STD)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, INIT_STD)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, SinusoidalPositions):
                module.reset_parameters()
        scaled = INIT_STD / math.sqrt(2 * self.cfg.n_layers)
        for block in self.blocks:
            for linear in block.residual_projections():
                nn.init.normal_(linear.weight, 0.0, scaled)
        if self.head_bias is not None:
            nn.init.zeros_(self.head_bias)

    # ----------------------------------------------------------------------------------------

    @property
    def runs_any_length(self) -> bool:
        """Whether inputs longer than ``cfg.max_length`` are well defined and cheap: rotary
        positions (no learned table of ``max_length`` rows) and, in every block, attention
        whose memory grows linearly with length and which has no length-sized learned tables
        (FAVOR+, AFT-simple, AFT-conv; not exact, AFT-full or AFT-local)."""
        return self.rotary is not None and all(
            b.attn.linear_memory and not b.attn.length_limited for b in self.blocks
        )

    def _check(self, tokens: Tensor, mask: Tensor | None, any_length: bool = False) -> None:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, L], got shape {tuple(tokens.shape)}")
        length = tokens.shape[1]
        if length > self.cfg.max_length and any_length and not self.runs_any_length:
            raise ValueError(
                f"sequence length {length} exceeds model.max_length {self.cfg.max_length} and "
                f"this model (position={self.cfg.position}, attention={self.cfg.attention.kind})"
                " cannot run longer inputs whole: that needs rotary positions and FAVOR+, "
                "aft_simple or aft_conv attention; use sliding windows"
            )
        if length > self.cfg.max_length and not any_length:
            raise ValueError(
                f"sequence length {length} exceeds model.max_length {self.cfg.max_length}; "
                "crop the data (data.max_length) or use a model with longer positions"
            )
        if mask is not None and mask.shape != tokens.shape:
            raise ValueError(
                f"mask shape {tuple(mask.shape)} must equal tokens shape {tuple(tokens.shape)}"
            )

    def _layer_indices(self, layers: Sequence[int]) -> list[int]:
        """Block indices (negative counts from the end) -> 0-based, checked."""
        n = len(self.blocks)
        wanted = [int(i) for i in layers]
        for i in wanted:
            if not -n <= i < n:
                raise ValueError(f"layer {i} out of range for a model with {n} layers")
        return [i % n for i in wanted]

    def _keys(self, layers: Sequence[int]) -> dict[int, list[int]]:
        """0-based block index -> the caller's keys that name it (checked)."""
        keys: dict[int, list[int]] = {}
        for index, key in zip(self._layer_indices(layers), layers):
            keys.setdefault(index, []).append(int(key))
        return keys

    def embed(self, tokens: Tensor) -> Tensor:
        """tokens [B, L] -> input of the first block [B, L, D]."""
        x = self.token_embedding(tokens)
        if self.positions is not None:
            x = x + self.positions(tokens.shape[1])
        return self.drop(x)

    def logits(self, x: Tensor) -> Tensor:
        """Final hidden states [B, L, D] -> logits [B, L, V]."""
        x = self.norm(x)
        if self.head is not None:
            return self.head(x)
        return F.linear(x, self.token_embedding.weight, self.head_bias)

    def run(
        self,
        tokens: Tensor,
        mask: Tensor | None = None,
        *,
        logits: bool = True,
        hidden_layers: Sequence[int] = (),
        attention_layers: Sequence[int] = (),
        qkv_layers: Sequence[int] = (),
        any_length: bool = False,
    ) -> ModelOutputs:
        """The one walk of the blocks: logits and the requested layers' states in one pass.

        tokens [B, L] long, mask [B, L] bool (True on real tokens) or None. Layer indices
        count from 0, negative from the end; outputs are keyed as given (see
        :class:`~protein_performer.model.outputs.ModelOutputs`). ``any_length``: accept inputs
        longer than ``cfg.max_length`` when :attr:`runs_any_length` (else a clear error). The
        walk stops after the last requested layer when no logits are wanted. Mode and
        gradients are the caller's (``forward`` trains through it).
        """
        self._check(tokens, mask, any_length)
        n = len(self.blocks)
        hidden, attention, qkv = (
            self._keys(layers) for layers in (hidden_layers, attention_layers, qkv_layers)
        )
        last = n - 1 if logits else max([*hidden, *attention, *qkv], default=-1)
        out = ModelOutputs()
        x = self.embed(tokens)
        for index, block in enumerate(self.blocks):
            if index > last:
                break
            if index in attention or index in qkv:
                normed = block.norm1(x)
                if index in attention:
                    matrix = block.attn.attention_matrix(normed, mask, self.rotary)
                    out.attention.update(dict.fromkeys(attention[index], matrix))
                if index in qkv:
                    out.qkv.update(
                        dict.fromkeys(qkv[index], block.attn.project(normed, self.rotary))
                    )
            if index < last or logits or index in hidden:
                x = block(x, mask, self.rotary)
            if index in hidden:
                state = self.norm(x) if index == n - 1 else x
                out.hidden.update(dict.fromkeys(hidden[index], state))
        if logits:
            out.logits = self.logits(x)
        return out

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.run(tokens, mask).logits

    # -- causal walks from a prefix state (generation, shared-prefix scoring) ----------------

    def decoding_states(self, batch: int) -> list:
        """Fresh per-block decoding states for ``batch`` sequences (causal models only; the
        kinds' ``decoding.py``)."""
        weight = self.token_embedding.weight
        return [b.attn.init_state(batch, weight.device, weight.dtype) for b in self.blocks]

    def _embed_from(self, tokens: Tensor, start: int) -> tuple[Tensor, Rotary | None]:
        """tokens [B, n] at positions start .. start+n-1 -> block input [B, n, D] and the
        rotary rotation from ``start`` (None without rotary positions)."""
        end = start + tokens.shape[1]
        if end > self.cfg.max_length:
            raise ValueError(
                f"position {end - 1} is past model.max_length {self.cfg.max_length}: the "
                "model cannot take longer sequences"
            )
        x = self.token_embedding(tokens)
        if self.positions is not None:
            x = x + self.positions(end)[start:]
        rotary = None
        if self.rotary is not None:

            def rotary(y: Tensor) -> Tensor:
                return rotate_at(self.rotary, y, start)

        return self.drop(x), rotary

    def run_step(self, tokens: Tensor, states: list) -> Tensor:
        """One token per sequence, tokens [B, 1] at position ``states[0].position`` -> logits
        [B, 1, V]: row ``position`` of the causal forward; every state advances by it."""
        x, rotary = self._embed_from(tokens, states[0].position)
        for block, state in zip(self.blocks, states):
            x = block.step(x, state, rotary)
        return self.logits(x)

    def run_suffix(self, tokens: Tensor, states: list) -> Tensor:
        """n tokens per sequence after the prefix the ``states`` hold, tokens [B, n] ->
        logits [B, n, V]: rows ``position .. position+n-1`` of the causal forward on prefix +
        tokens, in one pass per block; the states are left as they were."""
        x, rotary = self._embed_from(tokens, states[0].position)
        for block, state in zip(self.blocks, states):
            x = block.suffix(x, state, rotary)
        return self.logits(x)

    @torch.no_grad()
    def attention_maps(
        self, tokens: Tensor, mask: Tensor | None = None, layers: Sequence[int] | None = None
    ) -> list[Tensor]:
        """Each requested layer's attention matrix ``[B, H, L, L]`` on its own input.

        ``layers``: block indices (negative counts from the end), default all, returned in
        the order given. Runs in eval mode (dropout off; the mode is restored afterwards);
        no gradients. Rows sum to 1 over real keys; O(L^2) memory: short sequences only.
        """
        wanted = list(range(len(self.blocks)) if layers is None else layers)
        out = self._eval_run(tokens, mask, logits=False, attention_layers=wanted)
        return [out.attention[i] for i in wanted]

    @torch.no_grad()
    def hidden_states(
        self,
        tokens: Tensor,
        mask: Tensor | None = None,
        layers: Sequence[int] = (-1,),
        any_length: bool = False,
    ) -> list[Tensor]:
        """Residual-stream outputs ``[B, L, D]`` of the requested blocks, in the order given.

        ``layers``: block indices (negative counts from the end); ``-1`` is the last block's
        output after the final LayerNorm (the representation the head reads), other layers
        are raw block outputs; layer ``0`` of ``n`` is the first block's output. Eval mode
        (restored afterwards), no gradients; the same computation as ``forward``.
        ``any_length``: accept inputs longer than ``cfg.max_length`` when
        :attr:`runs_any_length` (else a clear error).
        """
        wanted = list(layers)
        out = self._eval_run(
            tokens, mask, logits=False, hidden_layers=wanted, any_length=any_length
        )
        return [out.hidden[i] for i in wanted]

    def _eval_run(self, tokens: Tensor, mask: Tensor | None, **wanted) -> ModelOutputs:
        """:meth:`run` in eval mode, the caller's mode restored afterwards."""
        was_training = self.training
        self.eval()
        try:
            return self.run(tokens, mask, **wanted)
        finally:
            self.train(was_training)

    def redraw_features(self, step: int) -> int:
        """Offer a feature redraw at training step ``step`` to every layer; how many redrew."""
        return sum(bool(block.attn.maybe_redraw(step)) for block in self.blocks)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- exported folders (config.json + model.safetensors; model/pretrained.py) ---------------

    @classmethod
    def from_pretrained(
        cls, path: str | Path, map_location: str | torch.device = "cpu"
    ) -> PerformerLM:
        """The model of a folder written by ``protein-performer-export`` (or
        :meth:`save_pretrained`), in eval mode; its weights and FAVOR+ projections as saved."""
        folder = read_pretrained_folder(path)
        return folder.load_into(cls(folder.model_cfg)).to(map_location)

    def save_pretrained(self, path: str | Path, objective: Objective | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (no model card: see
        ``protein-performer-export``); ``objective`` defaults to clm / mlm by ``cfg.causal``."""
        objective = objective or Objective("clm" if self.cfg.causal else "mlm")
        return save_folder(path, self, objective)
