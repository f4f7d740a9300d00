"""Batches of similar-length examples under a padded-token budget (sharded like the others)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protein_performer.data.batching import pack
from protein_performer.data.sampling.samplers import (
    SALT_BATCH_ORDER,
    SALT_SHUFFLE,
    BatchPlan,
    EpochBatchSampler,
    epoch_rng,
)


def _bounds(lengths: np.ndarray, max_tokens: int, max_batch_size: int | None) -> np.ndarray:
    """Batch boundaries over the lengths in ascending (stable) order: each batch the longest
    run with ``max_len * n <= max_tokens`` (:func:`protein_performer.data.batching.pack`)."""
    sizes = [
        len(b) for b in pack(lengths, max_tokens, longest_first=False, max_rows=max_batch_size)
    ]
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)


class TokenBudgetBatchSampler(EpochBatchSampler):
    """Batches of similar-length examples whose padded size ``max_len * n <= max_tokens``.

    Examples are sorted by length and packed greedily; ties (equal lengths, e.g. all
    examples cropped to ``max_length``) are broken by a seeded shuffle each epoch, and the
    batch order is shuffled each epoch. Unlike ESM's/fairseq's chunked variant, sorting is
    global, so the batch *boundaries* (and hence the number of batches) are the same every
    epoch: Lightning reads ``len()`` once per fit and would cut or end early an epoch whose
    batch count changed. ``shuffle=False`` (evaluation): ascending length, fixed order.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        max_tokens: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad_ranks: bool = True,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__(seed=seed, rank=rank, world_size=world_size, pad_ranks=pad_ranks)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_tokens = int(max_tokens)
        self.shuffle = bool(shuffle)
        if len(self.lengths) and int(self.lengths.max()) > self.max_tokens:
            raise ValueError(
                f"max_tokens={self.max_tokens} is smaller than the longest example "
                f"({int(self.lengths.max())} tokens): raise max_tokens to at least max_length"
            )
        self._sorted_order = np.argsort(self.lengths, kind="stable")
        self._bounds = _bounds(self.lengths, self.max_tokens, max_batch_size)

    @property
    def n_batches(self) -> int:
        return len(self._bounds) - 1

    def plan(self, epoch: int) -> BatchPlan:
        starts, ends = self._bounds[:-1], self._bounds[1:]
        if not self.shuffle:
            return BatchPlan(self._sorted_order, starts, ends)
        perm = epoch_rng(self.seed, epoch, SALT_SHUFFLE).permutation(len(self.lengths))
        # stable sort of a random permutation: same sorted lengths, random tie order
        order = perm[np.argsort(self.lengths[perm], kind="stable")]
        batch_order = epoch_rng(self.seed, epoch, SALT_BATCH_ORDER).permutation(len(starts))
        return BatchPlan(order, starts[batch_order], ends[batch_order])
