"""Batch samplers: sharding across ranks, token budgets, cluster balance, resume."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from lightning_fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import DataLoader

from protein_performer.data.sampling.cluster_sampler import ClusterSampler
from protein_performer.data.sampling.clusters import read_cluster_tsv, read_clusters
from protein_performer.data.sampling.samplers import ShardedBatchSampler
from protein_performer.data.sampling.token_budget import TokenBudgetBatchSampler


def _epoch(sampler_factory, world: int, epoch: int = 0) -> list[list[list[int]]]:
    """Per rank, the batches of one epoch."""
    out = []
    for rank in range(world):
        s = sampler_factory(rank, world)
        s.set_epoch(epoch)
        out.append(list(s))
    return out


@pytest.mark.parametrize(
    "n,batch,world", [(10, 3, 1), (10, 3, 3), (12, 4, 3), (5, 4, 4), (1, 1, 2)]
)
def test_sharded_every_example_once_and_equal_steps(n: int, batch: int, world: int) -> None:
    make = lambda r, w: ShardedBatchSampler(n, batch, seed=1, rank=r, world_size=w)  # noqa: E731
    per_rank = _epoch(make, world)
    steps = {len(b) for b in per_rank}
    assert len(steps) == 1, "every rank must run the same number of steps"
    assert steps.pop() == len(make(0, world))
    n_batches = -(-n // batch)
    padded = make(0, world).n_padded_batches()
    assert padded == (-n_batches) % world
    seen = Counter(i for batches in per_rank for b in batches for i in b)
    assert set(seen) == set(range(n))
    # duplicates come only from the documented padding (whole batches from the epoch start)
    plan = make(0, world).global_batches(0)
    expected_dupes = Counter(i for k in range(padded) for i in plan[k % len(plan)])
    assert Counter({i: c - 1 for i, c in seen.items() if c > 1}) == expected_dupes


def test_sharded_eval_no_padding_no_duplicates() -> None:
    make = lambda r, w: ShardedBatchSampler(
        10, 3, shuffle=False, pad_ranks=False, rank=r, world_size=w
    )  # noqa: E731
    per_rank = _epoch(make, 3)
    flat = [i for batches in per_rank for b in batches for i in b]
    assert sorted(flat) == list(range(10))
    assert [len(b) for b in per_rank] == [2, 1, 1] == [len(make(r, 3)) for r in range(3)]
    assert per_rank[0][0] == [0, 1, 2]


def test_shuffle_deterministic_per_seed_and_epoch() -> None:
    def order(seed, epoch):
        s = ShardedBatchSampler(50, 7, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert order(0, 0) == order(0, 0)
    assert order(0, 0) != order(0, 1)
    assert order(0, 0) != order(1, 0)


def test_lightning_set_sampler_epoch_reaches_batch_sampler() -> None:
    s = ShardedBatchSampler(10, 2)

    class Linked:
        epoch = -1

        def set_epoch(self, e):
            self.epoch = e

    linked = Linked()
    s.link_epoch(linked)
    dl = DataLoader(list(range(10)), batch_sampler=s)
    _set_sampler_epoch(dl, 3)
    assert s.epoch == 3 and linked.epoch == 3


def _lengths(n: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.minimum(rng.integers(3, 200, size=n), 128)  # many ties at the crop length


def test_token_budget_respected_and_all_used_once() -> None:
    lengths = _lengths()
    s = TokenBudgetBatchSampler(lengths, max_tokens=512, seed=2)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s) == s.n_batches  # same count every epoch
        for b in batches:
            assert max(lengths[b]) * len(b) <= 512
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(len(lengths)))
        # similar lengths together: batches cover disjoint length ranges
        ranges = sorted((lengths[b].min(), lengths[b].max()) for b in batches)
        assert all(hi <= nxt_lo for (_, hi), (nxt_lo, _) in zip(ranges, ranges[1:]))
    s.set_epoch(0)
    e0 = list(s)
    s.set_epoch(1)
    assert e0 != list(s)


def test_token_budget_packs_greedily_against_reference() -> None:
    lengths = _lengths(120, seed=5)
    s = TokenBudgetBatchSampler(lengths, max_tokens=400, shuffle=False)
    # reference: walk the ascending lengths, open a new batch when the next would overflow
    ref, cur = [], []
    for L in np.sort(lengths):
        if cur and max(cur + [L]) * (len(cur) + 1) > 400:
            ref.append(cur)
            cur = []
        cur.append(int(L))
    ref.append(cur)
    assert [sorted(lengths[b].tolist()) for b in s] == ref


def test_token_budget_sharded_and_validated() -> None:
    lengths = _lengths(101, seed=3)
    make = lambda r, w: TokenBudgetBatchSampler(lengths, 300, seed=4, rank=r, world_size=w)  # noqa: E731
    per_rank = _epoch(make, 2, epoch=1)
    assert len(per_rank[0]) == len(per_rank[1])
    seen = {i for batches in per_rank for b in batches for i in b}
    assert seen == set(range(101))
    with pytest.raises(ValueError, match="max_tokens=10 is smaller than the longest example"):
        TokenBudgetBatchSampler([5, 11], 10)


def test_cluster_sampler_balanced() -> None:
    sizes = [1, 2, 5, 12]
    cluster_ids = np.repeat(np.arange(len(sizes)) * 10 + 3, sizes)  # arbitrary labels
    s = ClusterSampler(cluster_ids, batch_size=3, seed=0)
    assert s.n_clusters == 4 and len(s) == 2  # 4 draws per epoch, batches of 3
    member_counts: Counter = Counter()
    epochs = 1500
    for e in range(epochs):
        draws = s.order(e)
        # exact balance per epoch: each cluster once
        assert sorted(cluster_ids[draws].tolist()) == sorted(set(cluster_ids.tolist()))
        member_counts.update(draws.tolist())
    # within a cluster, members are uniform: count ~ Binomial(epochs, 1/size)
    start = 0
    for size in sizes:
        counts = np.array([member_counts[i] for i in range(start, start + size)])
        expected = epochs / size
        sd = np.sqrt(epochs * (1 / size) * (1 - 1 / size)) + 1e-9
        assert np.all(np.abs(counts - expected) < 5 * sd), (size, counts)
        start += size
    assert s.order(3).tolist() == ClusterSampler(cluster_ids, 3, seed=0).order(3).tolist()


def test_cluster_sampler_num_samples_and_ranks() -> None:
    ids = np.arange(7) // 2  # 4 clusters
    make = lambda r, w: ClusterSampler(ids, 2, num_samples=10, rank=r, world_size=w)  # noqa: E731
    per_rank = _epoch(make, 2)
    assert len(per_rank[0]) == len(per_rank[1]) == 3  # 5 batches, padded to 6
    assert sum(len(b) for bs in per_rank for b in bs) == 10 + len(make(0, 2).global_batches(0)[0])


@pytest.mark.parametrize("gz", [False, True])
def test_read_cluster_tsv_counts(tmp_path: Path, gz: bool) -> None:
    text = "A\tA\nA\tsp|B|B_HUMAN\nA\tGHOST1\nC\tC\nC\tGHOST2\r\nC\tB\n\n"
    path = tmp_path / ("c.tsv.gz" if gz else "c.tsv")
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    accessions = ["A", "B", "C", "D", "E"]
    ids, report = read_cluster_tsv(path, accessions)
    assert report.n_lines == 6
    assert report.n_members_missing == 2
    assert report.n_duplicate_members == 1  # B listed again under C
    assert report.n_unclustered == 2  # D, E become singletons
    assert report.n_clusters == 4
    assert ids[0] == ids[1] and len({ids[0], ids[2], ids[3], ids[4]}) == 4
    assert "2 members not in the corpus" in report.summary()


def test_read_cluster_tsv_malformed(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("A\tA\nA B\n")
    with pytest.raises(ValueError, match=r"bad.tsv, line 2: expected 'representative<TAB>member'"):
        read_cluster_tsv(path, ["A"])
    with pytest.raises(ValueError, match=r"bad.tsv, line 2: expected 'representative<TAB>member'"):
        read_clusters(path)  # the split command reads the same format with the same checks
    path.write_text("R1\tA\t0.9\nR1\tB\n")  # extra columns (scores) are ignored
    assert read_clusters(path) == {"A": "R1", "B": "R1"}


@pytest.mark.parametrize(
    "factory",
    [
        lambda: ShardedBatchSampler(40, 3, seed=5, rank=1, world_size=2),
        lambda: TokenBudgetBatchSampler(_lengths(60), 256, seed=5, rank=1, world_size=2),
        lambda: ClusterSampler(np.arange(40) // 3, 2, seed=5, rank=1, world_size=2),
    ],
)
def test_state_dict_resumes_mid_epoch(factory) -> None:
    full = factory()
    full.set_epoch(2)
    expected = list(full)
    k = 3
    s = factory()
    s.set_epoch(2)
    it = iter(s)
    consumed = [next(it) for _ in range(k)]
    assert consumed == expected[:k]
    state = s.state_dict()
    assert state["epoch"] == 2 and state["batches_consumed"] == k
    fresh = factory()
    fresh.load_state_dict(state)
    fresh.set_epoch(2)  # Lightning sets the same epoch again after restoring: position kept
    assert list(fresh) == expected[k:]
    assert len(fresh) == len(expected)  # len() is the whole epoch (Lightning counts from k)
    assert list(fresh) == expected  # the next pass over the same epoch is whole again
    assert fresh.state_dict()["epoch"] == 3 and fresh.state_dict()["batches_consumed"] == 0
    fresh.set_epoch(3)
    assert list(fresh) == list(factory().rank_batches(3))


def test_resume_checks_world_size_and_seed() -> None:
    s = ShardedBatchSampler(10, 2, world_size=2)
    with pytest.raises(ValueError, match="world_size"):
        s.load_state_dict({"epoch": 0, "batches_consumed": 2, "world_size": 4, "seed": 0})
    with pytest.raises(ValueError, match="data.seed"):
        s.load_state_dict({"epoch": 0, "batches_consumed": 2, "world_size": 2, "seed": 9})
