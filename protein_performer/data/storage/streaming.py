"""Training from a shard set (:mod:`~.shards`) streamed from a directory or object storage.

How an epoch is split, so that every protein is seen exactly once across nodes x ranks x
DataLoader workers, with the same number of steps on every rank:

1. Every rank computes the same *epoch sequence*, a pure function of ``(seed, epoch)``: the
   shards in a seeded random order (training) or as stored (evaluation), read front to back.
2. Rank ``r`` of ``W`` takes positions ``[r * M, (r + 1) * M)`` with ``M = ceil(N / W)``;
   the last rank's range runs past ``N`` by ``W * M - N < W`` positions, which wrap to the
   start of the sequence (training: proteins repeated so ranks run equal steps, counted in
   ``n_padded``). Evaluation does not pad: ranks get ``N // W`` or one more.
3. Worker ``k`` of ``K`` takes a contiguous part of its rank's range (sizes differ by <= 1),
   shuffles it through a seeded buffer (``shuffle_buffer`` proteins) and cuts it into
   batches of ``batch_size`` (its last batch may be smaller: nothing is dropped). Batch
   counts depend only on ``M``, ``K`` and ``batch_size``, so they are equal on every rank.

Each rank reads ~1/W of the corpus: whole shards, except at the edges of its range (a tar
stream cannot seek, so a shard entered mid-way is read, not decoded, from its start).

Crops and collation are those of :class:`~.datasets.ProteinDataset` and :class:`~.collate.Collate`
(a protein is cropped the same way whether read from a store, FASTA or shards).

Resume: the position is the epoch and the number of batches this rank consumed
(:class:`~.samplers.EpochPosition`). The DataLoader takes batches from its workers in
turn, skipping exhausted ones, so the batches each worker's share had delivered, and the
share owing the next batch, follow from that count (:func:`resume_plan`); the resumed
workers take the shares in that rotation, replay their (deterministic) streams and skip
what was delivered. A checkpoint taken
mid-epoch resumes only with the same world size and ``num_workers``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler, get_worker_info

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.datasets import protein_example
from protein_performer.data.sampling.collate import Collate
from protein_performer.data.sampling.samplers import EpochPosition
from protein_performer.data.storage.locations import ShardError
from protein_performer.data.storage.shards import ShardSet
from protein_performer.errors import InputError
from protein_performer.seeding import mix_seed

_SALT_SHARDS = 11
_SALT_BUFFER = 12


def _split(n: int, parts: int) -> np.ndarray:
    """int64 [parts]: sizes of ``parts`` contiguous pieces of ``n`` (differing by <= 1)."""
    return np.full(parts, n // parts, np.int64) + (np.arange(parts) < n % parts)


def resume_plan(batches: np.ndarray, consumed: int) -> tuple[np.ndarray, int]:
    """(batches each worker delivered, worker of the next batch) after ``consumed`` batches.

    A DataLoader takes one batch from each worker in turn (0, 1, ..., K-1, 0, ...), skipping
    workers that have run out; ``batches[k]`` is worker k's total for the epoch.
    """
    b = np.asarray(batches, np.int64)
    done = np.zeros(len(b), np.int64)
    left = int(consumed)
    while True:
        active = np.flatnonzero(done < b)
        if len(active) == 0:
            return done, 0
        if left < len(active):
            done[active[:left]] += 1
            return done, int(active[left])
        # whole rounds while the set of active workers stays the same
        rounds = min(left // len(active), int((b[active] - done[active]).min()))
        done[active] += rounds
        left -= rounds * len(active)


def shuffle_buffer(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """A seeded streaming shuffle: hold ``size`` items, emit a random one per new arrival."""
    buf: list = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        j = int(rng.integers(size))
        buf[j], item = item, buf[j]
        yield item
    for j in rng.permutation(len(buf)):
        yield buf[j]


class StreamingProteinDataset(EpochPosition, IterableDataset):
    """Collated batches of one protein each per example, streamed from a :class:`ShardSet`.

    Iterate it through :class:`StreamingLoader` (``num_workers`` must match the loader's).
    ``len()`` is this rank's batches per epoch. ``worker=(k, K)`` overrides the DataLoader's
    worker info (tests, and iterating one worker's share by hand).
    """

    def __init__(
        self,
        shards: ShardSet,
        max_length: int,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        shuffle_buffer: int = 10_000,
        collate: Collate | None = None,
    ) -> None:
        EpochPosition.__init__(self, seed=seed, rank=rank, world_size=world_size)
        if max_length <= 2:
            raise ValueError(f"max_length must be > 2 (room for <cls>, <eos>), got {max_length}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if shuffle_buffer < 1:
            raise ValueError(f"shuffle_buffer must be >= 1, got {shuffle_buffer}")
        self.shards = shards
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.train = bool(train)
        self.num_workers = int(num_workers)
        self.shuffle_buffer = int(shuffle_buffer)
        self.collate = collate or Collate(ALPHABET.pad_idx)
        self.n = len(shards)
        if self.n == 0:
            raise ShardError(f"{shards.location}: the shard set holds no proteins")
        n_workers = max(1, self.num_workers)
        if self.train:
            # equal ranges on every rank; the last rank's overflow wraps around
            self.rank_size = -(-self.n // self.world_size)
            self.rank_start = self.rank * self.rank_size
            self.n_padded = self.world_size * self.rank_size - self.n
        else:
            sizes = _split(self.n, self.world_size)
            self.rank_size = int(sizes[self.rank])
            self.rank_start = int(sizes[: self.rank].sum())
            self.n_padded = 0
        self.worker_sizes = _split(self.rank_size, n_workers)
        self.worker_batches = -(-self.worker_sizes // self.batch_size)

    # -- the plan -------------------------------------------------------------------------
    def _rank_len(self, epoch: int) -> int:
        return int(self.worker_batches.sum())

    def _state_extra(self) -> dict:
        return {"num_workers": self.num_workers}

    def _check_state(self, state: dict, consumed: int) -> None:
        saved = state.get("num_workers", self.num_workers)
        if consumed > 0 and saved != self.num_workers:
            raise InputError(
                f"cannot resume mid-epoch with data.num_workers={self.num_workers}: the checkpoint"
                f" was written with {saved} (the workers' shares of a streamed epoch depend on it;"
                f" set data.num_workers={saved} or resume from an end-of-epoch checkpoint)"
            )

    def shard_order(self, epoch: int) -> np.ndarray:
        """The order the shards are read in an epoch (seeded permutation when training)."""
        k = len(self.shards.names)
        if not self.train:
            return np.arange(k)
        return np.random.default_rng(mix_seed(self.seed, epoch, _SALT_SHARDS)).permutation(k)

    def worker_span(self, worker: int) -> tuple[int, int]:
        """(first position, proteins) of a worker's share of this rank's range."""
        start = self.rank_start + int(self.worker_sizes[:worker].sum())
        return start, int(self.worker_sizes[worker])

    def _positions(
        self, start: int, count: int, order: np.ndarray
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Proteins at positions [start, start + count) of the epoch sequence, wrapping at N."""
        pos, end = start, start + count
        while pos < end:
            lo = pos % self.n
            hi = min(self.n, lo + (end - pos))
            yield from self.shards.iter_range(lo, hi, order)
            pos += hi - lo

    # -- iteration ------------------------------------------------------------------------
    def _worker(self) -> tuple[int, int]:
        info = get_worker_info()
        return (0, 1) if info is None else (info.id, info.num_workers)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self.iter_worker(*self._worker())

    def iter_worker(self, worker: int, n_workers: int) -> Iterator[dict[str, torch.Tensor]]:
        """Batches of worker ``worker`` of ``n_workers`` (from this epoch's resume point)."""
        if n_workers != max(1, self.num_workers):
            raise ValueError(
                f"the dataset was planned for num_workers={self.num_workers}, iterated by "
                f"{n_workers} worker(s): pass the same num_workers to the DataLoader"
            )
        # Read the resume point now, not when the generator starts. A fresh DataLoader asks
        # worker 0 first: the worker that owed the next batch takes share 0's role, and so on.
        done, first = resume_plan(self.worker_batches, self._start)
        share = (first + worker) % n_workers
        return self._batches(self.epoch, share, int(done[share]))

    def _batches(self, epoch: int, worker: int, skip: int) -> Iterator[dict[str, torch.Tensor]]:
        start, count = self.worker_span(worker)
        items = self._positions(start, count, self.shard_order(epoch))
        if self.train:
            rng = np.random.default_rng(mix_seed(self.seed, epoch, _SALT_BUFFER, self.rank, worker))
            items = shuffle_buffer(items, self.shuffle_buffer, rng)
        to_skip = skip * self.batch_size
        batch: list[dict] = []
        for index, residues in items:
            if to_skip:
                to_skip -= 1
                continue
            batch.append(
                protein_example(
                    residues, index, self.max_length, train=self.train, seed=self.seed, epoch=epoch
                )
            )
            if len(batch) == self.batch_size:
                yield self.collate(batch)
                batch = []
        if batch:
            yield self.collate(batch)


class _EpochHook(Sampler):
    """The loader's ``sampler``: where Lightning calls ``set_epoch`` each epoch.

    Yields None forever, as the DataLoader's own sampler for iterable datasets does.
    """

    def __init__(self, dataset: StreamingProteinDataset) -> None:
        self.dataset = dataset

    def __iter__(self) -> Iterator[None]:
        return itertools.repeat(None)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)


class StreamingLoader(DataLoader):
    """A DataLoader over a :class:`StreamingProteinDataset` (batches come pre-collated).

    Forwards Lightning's ``set_epoch`` to the dataset and counts the batches it delivers
    (the dataset's ``state_dict()`` position), not those prefetched by workers.
    """

    def __init__(self, dataset: StreamingProteinDataset, **kwargs) -> None:
        if kwargs.get("num_workers", 0) != dataset.num_workers:
            raise ValueError(
                f"num_workers={kwargs.get('num_workers', 0)} differs from the "
                f"dataset's {dataset.num_workers}"
            )
        super().__init__(dataset, batch_size=None, **kwargs)
        # DataLoader forbids assigning .sampler after __init__; Lightning only reads it
        self.__dict__["sampler"] = _EpochHook(dataset)

    def __iter__(self):
        ds: StreamingProteinDataset = self.dataset  # type: ignore[assignment]
        start = ds._start
        it = super().__iter__()  # workers (and the single-process iterator) read ds._start here
        ds._start = 0
        return count_delivered(it, ds, "_handed_out", start)


def count_delivered(it: Iterator, holder: object, attr: str, start: int) -> Iterator:
    """Yield from ``it``, keeping ``holder.attr`` = ``start`` + batches delivered so far."""
    setattr(holder, attr, start)
    for batch in it:
        setattr(holder, attr, getattr(holder, attr) + 1)
        yield batch
