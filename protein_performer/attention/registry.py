"""kind -> attention class. Modules register themselves with :func:`register`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from protein_performer.attention.base import Attention
from protein_performer.attention.config import AttentionConfig

ATTENTION_REGISTRY: dict[str, type[Attention]] = {}

T = TypeVar("T", bound=type[Attention])


def register(*kinds: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` buildable as ``attention=<kind>`` (its ``kind``)."""

    def wrap(cls: T) -> T:
        for kind in kinds:
            if kind in ATTENTION_REGISTRY:
                raise KeyError(f"attention kind {kind!r} registered twice")
            ATTENTION_REGISTRY[kind] = cls
        return cls

    return wrap


def check_kind(kind: str) -> None:
    """Raise ValueError naming the registered kinds unless ``kind`` is one of them."""
    if kind not in ATTENTION_REGISTRY:
        raise ValueError(
            f"attention.kind must be one of {sorted(ATTENTION_REGISTRY)}, got {kind!r}"
        )


def build_attention(cfg: AttentionConfig, d_model: int, n_heads: int) -> Attention:
    """Construct the attention layer that ``cfg.kind`` names."""
    check_kind(cfg.kind)
    return ATTENTION_REGISTRY[cfg.kind](cfg, d_model=d_model, n_heads=n_heads)
