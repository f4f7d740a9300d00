"""Batch samplers that shard an epoch across DDP ranks, resumable mid-epoch.

Here: the plan of an epoch (:class:`BatchPlan`), its sharding and resume position
(:class:`EpochPosition`, :class:`EpochBatchSampler`) and fixed-size batches
(:class:`ShardedBatchSampler`); batches by length: :mod:`~.token_budget`, by
cluster: :mod:`~.cluster_sampler`.

How work is split (all samplers):

1. Every rank computes the same *global plan* for an epoch: a list of batches (lists of
   example indices), a pure function of ``(seed, epoch)``. No communication is needed.
2. Rank ``r`` of ``world_size`` takes batches ``r, r + W, r + 2W, ...``. When the number of
   batches is not a multiple of ``W`` and ``pad_ranks`` (training), the plan is padded by
   repeating its first batches so every rank runs the same number of steps (DDP needs
   that); ``n_padded_batches`` counts them. Evaluation uses ``pad_ranks=False``: no example
   is seen twice and ranks may differ by one batch (accumulate metrics with torchmetrics,
   synced at epoch end, not per-step ``sync_dist``).
3. DataLoader workers: the sampler runs in the main process and the DataLoader hands each
   batch to exactly one worker, so the per-worker split is exact by construction.

Resume: ``state_dict()`` holds the epoch and the number of batches this rank has consumed
in it; after ``load_state_dict`` the next ``__iter__`` starts at that batch (then later
epochs run whole). The count the sampler keeps itself is the number of batches it handed
out, which runs ahead of what the training loop consumed when workers prefetch; callers
that know better (the DataModule reads Lightning's progress) pass ``consumed=``.

Lightning calls ``set_epoch`` only on ``dataloader.sampler`` or ``dataloader.batch_sampler
.sampler``: these batch samplers expose themselves as ``.sampler`` so that happens, and
forward ``set_epoch`` to objects registered with :meth:`link_epoch` (the dataset, for crops).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from protein_performer.seeding import mix_seed

# Salts keep the random streams of different purposes apart (every batch sampler's are here;
# data/storage/streaming.py uses 11 and up).
SALT_SHUFFLE = 1
SALT_BATCH_ORDER = 2
SALT_CLUSTER = 3
SALT_MEMBER = 4


def epoch_rng(seed: int, epoch: int, salt: int) -> np.random.Generator:
    """The random stream of one purpose (``salt``) in one epoch: the same on every rank."""
    return np.random.default_rng(mix_seed(seed, epoch, salt))


@dataclass
class BatchPlan:
    """The batches of one epoch, without a Python list per batch (scales to 10^8 examples).

    Batch ``k`` is ``order[starts[k]:ends[k]]``.
    """

    order: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, k: int) -> np.ndarray:
        return self.order[self.starts[k] : self.ends[k]]


def fixed_size_plan(order: np.ndarray, batch_size: int) -> BatchPlan:
    # The last batch may be smaller: no example is dropped.
    starts = np.arange(0, len(order), batch_size, dtype=np.int64)
    return BatchPlan(order, starts, np.minimum(starts + batch_size, len(order)))


class EpochPosition:
    """An epoch counter with this rank's position in it: ``set_epoch``, ``state_dict``, resume.

    Shared by the batch samplers below and the streaming dataset (:mod:`~.streaming`).
    Subclasses give ``_rank_len(epoch)`` (batches this rank runs in an epoch) and may add
    fields to the state (``_state_extra``) with checks on load (``_check_state``).
    ``_start`` is the number of batches of the current epoch to skip at the next iteration.
    """

    def __init__(self, *, seed: int = 0, rank: int = 0, world_size: int = 1):
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0
        self._start = 0  # batches to skip at the next __iter__ (resume)
        self._handed_out = 0  # batches of this epoch handed out so far
        self._linked: list[Any] = []

    def _rank_len(self, epoch: int) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return self._rank_len(self.epoch)

    def link_epoch(self, *objects: Any) -> None:
        """Also call ``obj.set_epoch(epoch)`` whenever this object's epoch is set."""
        self._linked.extend(objects)
        for obj in objects:
            obj.set_epoch(self.epoch)

    def set_epoch(self, epoch: int) -> None:
        epoch = int(epoch)
        # The same epoch again (Lightning does this right after a resume) keeps the position.
        if epoch != self.epoch:
            self.epoch = epoch
            self._start = 0
            self._handed_out = 0
        for obj in self._linked:
            obj.set_epoch(epoch)

    def _normalise(self, epoch: int, consumed: int) -> tuple[int, int]:
        # A finished epoch is the start of the next one: Lightning creates the iterator of a
        # resumed run before it calls set_epoch, so the position must already be right.
        if consumed > 0 and consumed >= self._rank_len(epoch):
            return epoch + 1, 0
        return epoch, consumed

    def _state_extra(self) -> dict:
        return {}

    def _check_state(self, state: dict, consumed: int) -> None:
        """Raise ValueError when ``state`` cannot be resumed here (``consumed`` > 0: mid-epoch)."""

    def state_dict(self, consumed: int | None = None) -> dict:
        """Epoch and batches of it consumed by this rank (default: batches handed out).

        A finished epoch is saved as (epoch + 1, 0).
        """
        epoch, consumed = self._normalise(
            self.epoch, int(self._handed_out if consumed is None else consumed)
        )
        return {
            "epoch": epoch,
            "batches_consumed": consumed,
            "seed": self.seed,
            "world_size": self.world_size,
            "rank": self.rank,
            **self._state_extra(),
        }

    def load_state_dict(self, state: dict) -> None:
        consumed = int(state["batches_consumed"])
        if state.get("world_size", self.world_size) != self.world_size and consumed > 0:
            raise ValueError(
                f"cannot resume mid-epoch with world_size {self.world_size}: the checkpoint was "
                f"written with world_size {state['world_size']} (resume from an end-of-epoch "
                "checkpoint, or with the same number of devices)"
            )
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(
                f"cannot resume: sampler seed {self.seed} differs from the checkpoint's "
                f"{state['seed']} (data.seed must match the run being resumed)"
            )
        self._check_state(state, consumed)
        self.epoch, consumed = self._normalise(int(state["epoch"]), consumed)
        self._start = consumed
        self._handed_out = consumed
        for obj in self._linked:
            obj.set_epoch(self.epoch)


class EpochBatchSampler(EpochPosition, Sampler[list[int]]):
    """Base class: a global per-epoch plan of batches, sharded by batch across ranks."""

    def __init__(
        self, *, seed: int = 0, rank: int = 0, world_size: int = 1, pad_ranks: bool = True
    ):
        super().__init__(seed=seed, rank=rank, world_size=world_size)
        self.pad_ranks = bool(pad_ranks)
        self._plan_cache: tuple[int, BatchPlan] | None = None

    # -- to implement -------------------------------------------------------------------
    def plan(self, epoch: int) -> BatchPlan:
        """All batches of an epoch (every rank computes the same plan)."""
        raise NotImplementedError

    # -- sharding -----------------------------------------------------------------------
    def _plan(self, epoch: int) -> BatchPlan:
        if self._plan_cache is None or self._plan_cache[0] != epoch:
            self._plan_cache = (epoch, self.plan(epoch))
        return self._plan_cache[1]

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        """All batches of an epoch as arrays (for inspection and tests)."""
        p = self._plan(epoch)
        return [p.batch(k) for k in range(len(p))]

    def n_padded_batches(self, epoch: int | None = None) -> int:
        """Batches repeated (from the start of the epoch) to give every rank equal steps."""
        n = len(self._plan(self.epoch if epoch is None else epoch))
        if not self.pad_ranks or n % self.world_size == 0:
            return 0
        return self.world_size - n % self.world_size

    def rank_batch_ids(self, epoch: int | None = None) -> np.ndarray:
        """Indices into the epoch's plan of this rank's batches, in order."""
        epoch = self.epoch if epoch is None else epoch
        n = len(self._plan(epoch))
        extra = self.n_padded_batches(epoch)
        if extra and n == 0:
            raise ValueError("cannot pad an empty epoch across ranks")
        ids = np.arange(self.rank, n + extra, self.world_size, dtype=np.int64)
        return ids % n if n else ids

    def rank_batches(self, epoch: int | None = None) -> list[list[int]]:
        """This rank's batches of an epoch, in order."""
        epoch = self.epoch if epoch is None else epoch
        p = self._plan(epoch)
        return [p.batch(k).tolist() for k in self.rank_batch_ids(epoch)]

    def __len__(self) -> int:
        return self._rank_len(self.epoch)

    def __iter__(self) -> Iterator[list[int]]:
        p = self._plan(self.epoch)
        ids = self.rank_batch_ids(self.epoch)
        skip, self._start = self._start, 0
        self._handed_out = skip
        for k in ids[skip:]:
            self._handed_out += 1
            yield p.batch(k).tolist()

    @property
    def sampler(self) -> EpochBatchSampler:
        # Lightning's _set_sampler_epoch looks at batch_sampler.sampler.set_epoch.
        return self

    def _rank_len(self, epoch: int) -> int:
        n = len(self._plan(epoch))
        if self.pad_ranks:
            return -(-n // self.world_size)
        return len(range(self.rank, n, self.world_size))


class FixedSizeBatchSampler(EpochBatchSampler):
    """Base class: an epoch's :meth:`order` of example indices cut into batches of
    ``batch_size``; the last batch of an epoch may be smaller (nothing dropped)."""

    def __init__(
        self,
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad_ranks: bool = True,
    ) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size, pad_ranks=pad_ranks)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """int64 [N]: the example indices of an epoch, in batch order."""
        raise NotImplementedError

    def plan(self, epoch: int) -> BatchPlan:
        return fixed_size_plan(self.order(epoch), self.batch_size)


class ShardedBatchSampler(FixedSizeBatchSampler):
    """Fixed-size batches over ``n_examples`` (shuffled by seed + epoch when ``shuffle``)."""

    def __init__(
        self,
        n_examples: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad_ranks: bool = True,
    ) -> None:
        super().__init__(
            batch_size, seed=seed, rank=rank, world_size=world_size, pad_ranks=pad_ranks
        )
        self.n_examples = int(n_examples)
        self.shuffle = bool(shuffle)

    def order(self, epoch: int) -> np.ndarray:
        if self.shuffle:
            return epoch_rng(self.seed, epoch, SALT_SHUFFLE).permutation(self.n_examples)
        return np.arange(self.n_examples)
