"""Training: the LightningModule (mlm/clm), optimiser and schedule, callbacks.

The optimiser imports without Lightning; the LightningModule is loaded on first access so
that importing the package stays light. The objective and its targets live in
:mod:`protein_performer.objective` and :mod:`protein_performer.masking` (evaluation uses them).
"""

from typing import Any

from protein_performer.training.optim import OptimConfig, WarmupDecay, parameter_groups

__all__ = [
    "OptimConfig",
    "ProteinLMModule",
    "WarmupDecay",
    "parameter_groups",
]


def __getattr__(name: str) -> Any:
    if name == "ProteinLMModule":
        from protein_performer.training import module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
