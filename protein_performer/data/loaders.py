"""The DataLoader pieces of the data module: worker seeding and a train loader that counts
the batches it delivers (the resume position when no trainer reports it)."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, get_worker_info

from protein_performer.data.sampling.samplers import EpochPosition
from protein_performer.data.storage.streaming import count_delivered
from protein_performer.seeding import mix_seed


class WorkerInit:
    """Seed a DataLoader worker's global RNGs from (seed, epoch, rank, worker id)."""

    def __init__(self, seed: int, rank: int = 0) -> None:
        self.seed = int(seed)
        self.rank = int(rank)

    def __call__(self, worker_id: int) -> None:
        info = get_worker_info()
        epoch = getattr(info.dataset, "epoch", 0) if info is not None else 0
        s = mix_seed(self.seed, epoch, self.rank, worker_id)
        torch.manual_seed(s & ((1 << 63) - 1))
        np.random.seed(s & 0xFFFFFFFF)
        random.seed(s)


class BatchCounter:
    """Batches of the current epoch delivered to the consumer of the train dataloader."""

    def __init__(self) -> None:
        self.delivered = 0


class TrainDataLoader(DataLoader):
    """A DataLoader that counts batches it delivers (not those prefetched by workers)."""

    batch_counter: BatchCounter | None = None

    def __iter__(self):
        sampler = self.batch_sampler
        counter = self.batch_counter
        start = sampler._start if isinstance(sampler, EpochPosition) else 0
        it = super().__iter__()
        if counter is None:
            return it
        return count_delivered(it, counter, "delivered", start)
