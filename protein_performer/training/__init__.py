"""Training: the LightningModule (mlm/clm), masking, optimiser and schedule, callbacks.

Masking and the optimiser import without Lightning (evaluation uses them); the
LightningModule is loaded on first access so that `import ...training.masking` stays light.
"""

from typing import Any

from protein_performer.training.masking import IGNORE, causal_targets, mask_tokens
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


def __getattr__(name: str) -> Any:
    if name in ("ProteinLMModule", "OBJECTIVES"):
        from protein_performer.training import module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
