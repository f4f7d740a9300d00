"""Training: the LightningModule (mlm/clm; :mod:`protein_performer.training.module`),
optimiser and schedule, callbacks.

The package imports without Lightning (the optimiser here; the LightningModule from its
module). The objective and its targets live in :mod:`protein_performer.objective` and
:mod:`protein_performer.masking` (evaluation uses them).
"""

from protein_performer.training.optim import OptimConfig, WarmupDecay, parameter_groups

__all__ = [
    "OptimConfig",
    "WarmupDecay",
    "parameter_groups",
]
