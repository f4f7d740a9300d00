"""Attention mechanisms: exact softmax (SDPA), FAVOR+ (softmax / ReLU kernels), AFT.

Pure torch: no Lightning, no Hydra. Build a layer with
``build_attention(AttentionConfig(kind=...), d_model, n_heads)``.
"""

from protein_performer.attention import aft as _aft  # noqa: E402,F401

# Importing the implementations registers their kinds.
from protein_performer.attention import exact as _exact  # noqa: E402,F401
from protein_performer.attention.base import Attention
from protein_performer.attention.config import AttentionConfig
from protein_performer.attention.favor import (  # noqa: E402
    FavorAttention,
    draw_projection,
    favor_attention,
    favor_attention_matrix,
    gaussian_orthogonal_random_matrix,
    iid_gaussian_random_matrix,
)
from protein_performer.attention.registry import (
    ATTENTION_REGISTRY,
    build_attention,
    check_kind,
    register,
)

__all__ = [
    "Attention",
    "AttentionConfig",
    "ATTENTION_REGISTRY",
    "build_attention",
    "check_kind",
    "register",
    "draw_projection",
    "gaussian_orthogonal_random_matrix",
    "iid_gaussian_random_matrix",
    "FavorAttention",
    "favor_attention",
    "favor_attention_matrix",
]
