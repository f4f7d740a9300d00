"""Batches of similar-length examples under a padded-token budget (sharded like the others)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from protein_performer.data.sampling.samplers import (
    SALT_BATCH_ORDER,
    SALT_SHUFFLE,
    BatchPlan,
    EpochBatchSampler,
    epoch_rng,
)


def _pack_sorted(
    sorted_lengths: np.ndarray, max_tokens: int, max_batch_size: int | None
) -> np.ndarray:
    """Batch boundaries over ascending lengths: each batch the longest run with max_len * n <= max_tokens."""
    n = len(sorted_lengths)
    bounds = [0]
    s = 0
    cap = n if max_batch_size is None else max_batch_size
    while s < n:
        # f(e) = sorted_lengths[e - 1] * (e - s) grows with e: binary search the largest e.
        lo, hi = s + 1, min(n, s + cap)
        if sorted_lengths[s] > max_tokens:
            raise ValueError(
                f"an example has {int(sorted_lengths[s])} tokens, more than max_tokens={max_tokens}"
            )
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if sorted_lengths[mid - 1] * (mid - s) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        bounds.append(lo)
        s = lo
    return np.asarray(bounds, dtype=np.int64)


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
        self._bounds = _pack_sorted(
            self.lengths[self._sorted_order], self.max_tokens, max_batch_size
        )

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
