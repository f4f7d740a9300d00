"""Training: the LightningModule (mlm/clm), masking, optimiser and schedule, callbacks."""

from protein_performer.training.masking import IGNORE, causal_targets, mask_tokens
from protein_performer.training.module import OBJECTIVES, ProteinLMModule
from protein_performer.training.optim import OptimConfig, WarmupDecay, parameter_groups

__all__ = [
    "IGNORE",
    "OBJECTIVES",
    "OptimConfig",
    "ProteinLMModule",
    "WarmupDecay",
    "causal_targets",
    "mask_tokens",
    "parameter_groups",
]
