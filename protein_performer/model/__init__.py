"""The protein language model: config, embeddings, blocks, PerformerLM, checkpoint reading."""

from protein_performer.model.block import Block, FeedForward
from protein_performer.model.config import ModelConfig
from protein_performer.model.embeddings import LearnedPositions, RotaryEmbedding
from protein_performer.model.lm import PerformerLM

__all__ = [
    "Block",
    "FeedForward",
    "LearnedPositions",
    "ModelConfig",
    "PerformerLM",
    "RotaryEmbedding",
]
