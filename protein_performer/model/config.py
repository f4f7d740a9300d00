"""Typed configuration of the language model (the attention block nests inside)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from protein_performer.attention import AttentionConfig, check_kind
from protein_performer.data.alphabet import ALPHABET
from protein_performer.fields import check_fields

POSITIONS = ("learned", "sinusoidal", "rotary", "none")


@dataclass
class ModelConfig:
    """Sizes of a :class:`~protein_performer.model.lm.PerformerLM`.

    The model decides ``causal`` and ``max_length`` for its attention layers: an
    ``attention`` config that sets them must agree, or construction fails naming both. The
    training CLI builds it complete (``cli/config.py``); one built by hand that leaves them
    unset (None, the default) gets the model's values (a new :class:`AttentionConfig`; the
    caller's is not changed). Plain dicts (checkpoints, YAML) go through
    :meth:`from_dict`.
    """

    vocab_size: int = len(ALPHABET)
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 256
    dropout: float = 0.1
    max_length: int = 1024
    # learned (absolute table, as in the paper) | sinusoidal (fixed table) | rotary | none
    position: str = "learned"
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
        if self.position == "none" and not self.causal:
            raise ValueError(
                "model.position=none needs a causal model (objective=clm): without positions a "
                "bidirectional model sees an unordered bag of residues; use learned, "
                "sinusoidal or rotary"
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if not isinstance(self.causal, bool):
            raise ValueError(f"model.causal must be true or false, got {self.causal!r}")
        if not isinstance(self.attention, AttentionConfig):
            raise TypeError(
                f"model.attention must be an AttentionConfig, got "
                f"{type(self.attention).__name__} (plain dicts: ModelConfig.from_dict)"
            )
        check_kind(self.attention.kind)
        decided = {"causal": self.causal, "max_length": self.max_length}
        unset = {}
        for name, value in decided.items():
            given = getattr(self.attention, name)
            if given is None:
                unset[name] = value
            elif given != value:
                raise ValueError(
                    f"model.attention.{name} ({given}) disagrees with model.{name} ({value}): "
                    f"leave model.attention.{name} unset, the model decides it"
                )
        if unset:
            self.attention = dataclasses.replace(self.attention, **unset)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (nested attention dict): checkpoint hyper-parameters, YAML, JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """The config :meth:`to_dict` wrote (a checkpoint's ``model`` hyper-parameters)."""
        values = dict(values)
        check_fields(cls, "model", values)
        attention = values.pop("attention", None)
        if attention is not None:
            check_fields(AttentionConfig, "attention", attention)
            values["attention"] = AttentionConfig(**attention)
        return cls(**values)
