"""Cluster-balanced sampling (UniRef50-style), sharded like the other batch samplers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protein_performer.data.sampling.samplers import (
    SALT_CLUSTER,
    SALT_MEMBER,
    FixedSizeBatchSampler,
    epoch_rng,
)


class ClusterSampler(FixedSizeBatchSampler):
    """Cluster-balanced sampling (UniRef50-style): draw a cluster uniformly, then a member.

    An epoch has ``num_samples`` draws (default: the number of clusters). Clusters are
    drawn as shuffled passes over all clusters (each cluster exactly once per pass, so
    the balance is exact, not just in expectation), each draw taking a uniformly random
    member. Draws are cut into batches of ``batch_size`` and sharded like the others.
    """

    def __init__(
        self,
        cluster_ids: Sequence[int] | np.ndarray,
        batch_size: int,
        *,
        num_samples: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad_ranks: bool = True,
    ) -> None:
        super().__init__(
            batch_size, seed=seed, rank=rank, world_size=world_size, pad_ranks=pad_ranks
        )
        ids = np.asarray(cluster_ids, dtype=np.int64)
        _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
        self._members = np.argsort(inverse, kind="stable")  # example indices grouped by cluster
        self._sizes = counts.astype(np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.n_clusters = int(len(counts))
        self.num_samples = self.n_clusters if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")

    def order(self, epoch: int) -> np.ndarray:
        """int64 [num_samples]: the example indices drawn in an epoch."""
        rng = epoch_rng(self.seed, epoch, SALT_CLUSTER)
        passes = -(-self.num_samples // self.n_clusters)
        clusters = np.concatenate([rng.permutation(self.n_clusters) for _ in range(passes)])
        clusters = clusters[: self.num_samples]
        u = epoch_rng(self.seed, epoch, SALT_MEMBER).random(self.num_samples)
        offset = np.minimum((u * self._sizes[clusters]).astype(np.int64), self._sizes[clusters] - 1)
        return self._members[self._starts[clusters] + offset]
