"""kind -> attention class. Modules register themselves with :func:`register`."""

from __future__ import annotations

from typing import Callable, TypeVar

from protein_performer.attention.base import Attention

ATTENTION_REGISTRY: dict[str, type[Attention]] = {}

T = TypeVar("T", bound=type[Attention])


def register(*kinds: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` buildable as ``attention.kind=<kind>``."""

    def wrap(cls: T) -> T:
        for kind in kinds:
            if kind in ATTENTION_REGISTRY:
                raise KeyError(f"attention kind {kind!r} registered twice")
            ATTENTION_REGISTRY[kind] = cls
        return cls

    return wrap


def build_attention(cfg: "AttentionConfig", d_model: int, n_heads: int) -> Attention:  # noqa: F821
    """Construct the attention layer that ``cfg.kind`` names."""
    return ATTENTION_REGISTRY[cfg.kind](cfg, d_model=d_model, n_heads=n_heads)
