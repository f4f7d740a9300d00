"""Re-export of :mod:`protein_performer.data.batching` (the batch converter and packer live in
``data/`` so training's collate and sampler can use them without importing the runner)."""

from protein_performer.data.batching import COSTS, Batch, BatchConverter, Cost, pack

__all__ = ["COSTS", "Batch", "BatchConverter", "Cost", "pack"]
