"""Exact softmax attention (the Transformer baseline): ``layer.py`` the layer through fused
SDPA, ``decoding.py`` its token-by-token decode (a KV cache)."""

from protein_performer.attention.exact.decoding import KVCache, exact_step
from protein_performer.attention.exact.layer import ExactAttention, sdpa_mask

__all__ = ["ExactAttention", "KVCache", "exact_step", "sdpa_mask"]
