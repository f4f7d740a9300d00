"""Typed configuration of the language model (the attention block nests inside)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from protein_performer.attention import AttentionConfig
from protein_performer.data.alphabet import ALPHABET

POSITIONS = ("learned", "rotary")


@dataclass
class ModelConfig:
    """Sizes of a :class:`~protein_performer.model.lm.PerformerLM`.

    ``attention`` may be given as an :class:`AttentionConfig` or a plain dict; either way the
    model's ``causal`` and ``max_length`` are copied into it (the model decides both), and the
    stored value is always a fresh :class:`AttentionConfig`.
    """

    vocab_size: int = len(ALPHABET)
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 256
    dropout: float = 0.1
    max_length: int = 1024
    position: str = "learned"  # learned (absolute table, as in the paper) | rotary
    causal: bool = False
    tie_embeddings: bool = True
    attention: AttentionConfig = field(default_factory=AttentionConfig)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"model.{name} must be a positive integer, got {value!r}")
        if self.vocab_size < len(ALPHABET):
            raise ValueError(
                f"model.vocab_size ({self.vocab_size}) must be >= the alphabet size "
                f"({len(ALPHABET)}); use {len(ALPHABET)}"
            )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"model.d_model ({self.d_model}) must be divisible by model.n_heads "
                f"({self.n_heads})"
            )
        if self.position not in POSITIONS:
            raise ValueError(
                f"model.position must be one of {list(POSITIONS)}, got {self.position!r}"
            )
        if self.position == "rotary" and (self.d_model // self.n_heads) % 2:
            raise ValueError(
                f"model.position=rotary needs an even head dimension, got d_model/n_heads = "
                f"{self.d_model}/{self.n_heads} = {self.d_model // self.n_heads}"
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")
        self.causal = bool(self.causal)
        attn = self.attention
        if isinstance(attn, AttentionConfig):
            attn = dataclasses.asdict(attn)
        elif attn is None:
            attn = dataclasses.asdict(AttentionConfig())
        elif not isinstance(attn, dict):
            raise TypeError(
                f"model.attention must be an AttentionConfig or a dict, got {type(attn).__name__}"
            )
        allowed = {f.name for f in dataclasses.fields(AttentionConfig)}
        unknown = sorted(set(attn) - allowed)
        if unknown:
            raise ValueError(f"attention: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
        self.attention = AttentionConfig(
            **{**attn, "causal": self.causal, "max_length": self.max_length}
        )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (nested attention dict): checkpoint hyper-parameters, YAML, JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(f"model: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
        return cls(**values)
