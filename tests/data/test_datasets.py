"""Per-protein and concatenated datasets, sources helpers, and collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.datasets import (
    ChainedSources,
    ConcatenatedDataset,
    ProteinDataset,
    filter_lengths,
)
from protein_performer.data.sampling.collate import Collate
from protein_performer.data.source import InMemoryProteins
from protein_performer.seeding import mix_seed

CLS, EOS, SEP, PAD = ALPHABET.cls_idx, ALPHABET.eos_idx, ALPHABET.sep_idx, ALPHABET.pad_idx


def toy_source(n: int = 40, lo: int = 1, hi: int = 60, seed: int = 0) -> InMemoryProteins:
    rng = np.random.default_rng(seed)
    residues = ALPHABET.residue_idx
    arrays = [
        rng.choice(residues, size=int(rng.integers(lo, hi + 1))).astype(np.uint8) for _ in range(n)
    ]
    return InMemoryProteins.from_arrays(arrays, [f"P{i:05d}" for i in range(n)])


def _find(haystack: np.ndarray, needle: np.ndarray) -> list[int]:
    """Start positions of needle in haystack (reference, brute force)."""
    n = len(needle)
    return [s for s in range(len(haystack) - n + 1) if np.array_equal(haystack[s : s + n], needle)]


@pytest.mark.parametrize("train", [True, False])
def test_protein_examples_are_windows_of_the_token_stream(train: bool) -> None:
    """An example is <cls> + residues + <eos> when it fits, else a window of that stream:
    <cls> only at the real start, <eos> only at the real end (no false terminus)."""
    src = toy_source()
    ds = ProteinDataset(src, max_length=20, train=train, seed=3)
    assert len(ds) == len(src)
    n_cropped = n_no_cls = n_no_eos = 0
    for i in range(len(ds)):
        item = ds[i]
        t = item["tokens"].numpy()
        assert item["index"] == i and item["tokens"].dtype == torch.long
        assert len(t) == min(len(src[i]) + 2, 20) == ds.lengths[i]
        stream = np.concatenate([[CLS], src[i].astype(np.int64), [EOS]])
        s = ds.crop_start(i)
        assert 0 <= s <= max(0, len(stream) - 20)
        np.testing.assert_array_equal(t, stream[s : s + 20])
        assert (t[0] == CLS) == (s == 0)
        assert (t[-1] == EOS) == (s + len(t) == len(stream))
        assert (t == CLS).sum() <= 1 and (t == EOS).sum() <= 1
        if len(stream) > 20:
            n_cropped += 1
            n_no_cls += t[0] != CLS
            n_no_eos += t[-1] != EOS
            if not train:
                assert s == 0, "evaluation keeps the first tokens"
    assert n_cropped > 0 and n_no_eos > 0, "the toy source must exercise cropping"
    if train:
        assert n_no_cls > 0, "random training windows must also start mid-protein"


def test_training_crops_deterministic_and_vary_with_epoch() -> None:
    src = toy_source(n=30, lo=100, hi=200)
    a = ProteinDataset(src, max_length=16, train=True, seed=7)
    b = ProteinDataset(src, max_length=16, train=True, seed=7)
    for i in range(len(src)):
        assert torch.equal(a[i]["tokens"], b[i]["tokens"])
    starts0 = [a.crop_start(i) for i in range(len(src))]
    a.set_epoch(1)
    starts1 = [a.crop_start(i) for i in range(len(src))]
    assert starts0 != starts1
    c = ProteinDataset(src, max_length=16, train=True, seed=8)
    assert starts0 != [c.crop_start(i) for i in range(len(src))]
    # over many epochs the crop start covers the whole allowed range of a protein
    seen = set()
    one = InMemoryProteins.from_arrays([np.full(20, 6, np.uint8)], ["X"])
    d = ProteinDataset(one, max_length=16, train=True, seed=0)  # 14 kept, starts 0..6
    for e in range(400):
        d.set_epoch(e)
        seen.add(d.crop_start(0))
    assert seen == set(range(7))


def test_max_length_validated() -> None:
    with pytest.raises(ValueError, match="max_length must be > 2"):
        ProteinDataset(toy_source(), max_length=2, train=False)


def test_mix_seed_is_a_stable_function() -> None:
    assert mix_seed(1, 2, 3) == mix_seed(1, 2, 3)
    assert len({mix_seed(0, e, i) for e in range(10) for i in range(10)}) == 100
    assert 0 <= mix_seed(-5, 2**70) < 2**63


def _reference_stream(src) -> np.ndarray:
    parts = []
    for i in range(len(src)):
        parts += [src[i].astype(np.int64), np.array([SEP])]
    return np.concatenate(parts)


@pytest.mark.parametrize("max_length", [1, 7, 64, 500])
def test_concat_windows_reconstruct_the_stream(max_length: int) -> None:
    src = toy_source(n=25)
    stream = _reference_stream(src)
    ds = ConcatenatedDataset(src, max_length)
    assert ds.stream_length == len(stream)
    windows = [ds[w]["tokens"].numpy() for w in range(len(ds))]
    assert all(len(w) == max_length for w in windows[: ds.n_full_windows])
    np.testing.assert_array_equal(np.concatenate(windows), stream)
    np.testing.assert_array_equal(ds.lengths, [len(w) for w in windows])
    assert ds.dropped_tokens == 0
    # dropping the tail: full windows only, the dropped count reported
    dropped = ConcatenatedDataset(src, max_length, keep_tail=False)
    assert len(dropped) == len(stream) // max_length
    assert dropped.dropped_tokens == len(stream) % max_length
    if len(dropped):
        np.testing.assert_array_equal(
            np.concatenate([dropped[w]["tokens"].numpy() for w in range(len(dropped))]),
            stream[: len(dropped) * max_length],
        )
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_concat_8192_windows_span_many_proteins() -> None:
    src = toy_source(n=700, lo=20, hi=120, seed=1)
    stream = _reference_stream(src)
    ds = ConcatenatedDataset(src, 8192)
    assert len(ds) == -(-len(stream) // 8192) and len(ds) >= 4
    for w in [0, 1, len(ds) - 1]:
        np.testing.assert_array_equal(ds[w]["tokens"].numpy(), stream[w * 8192 : (w + 1) * 8192])
    assert (ds[0]["tokens"] == SEP).sum() > 50


def _examples(stream: np.ndarray) -> list[list[int]]:
    """A packed stream split back into its examples (<cls> starts each one)."""
    starts = np.flatnonzero(stream == CLS).tolist() + [len(stream)]
    return [stream[a:b].tolist() for a, b in zip(starts[:-1], starts[1:])]


@pytest.mark.parametrize("max_length", [1, 7, 64, 500])
def test_packed_windows_hold_every_example_once_in_a_seeded_order(max_length: int) -> None:
    src = toy_source(n=25)
    examples = sorted([CLS, *src[i].tolist(), EOS] for i in range(len(src)))
    ds = ConcatenatedDataset(src, max_length, train=True, seed=3, layout="example")

    def stream(d) -> np.ndarray:
        return np.concatenate([d[w]["tokens"].numpy() for w in range(len(d))])

    first = stream(ds)
    assert ds.stream_length == len(first) == sum(len(e) for e in examples)
    assert all(len(ds[w]["tokens"]) == max_length for w in range(ds.n_full_windows))
    assert sorted(_examples(first)) == examples  # each protein once, as <cls> p <eos>
    again = ConcatenatedDataset(src, max_length, train=True, seed=3, layout="example")
    np.testing.assert_array_equal(stream(again), first)  # a function of (seed, epoch)
    ds.set_epoch(1)
    second = stream(ds)
    assert len(second) == len(first) and not np.array_equal(second, first)
    assert sorted(_examples(second)) == examples
    # evaluation keeps the source's order
    ordered = ConcatenatedDataset(src, max_length, train=False, seed=3, layout="example")
    assert _examples(stream(ordered)) == [[CLS, *src[i].tolist(), EOS] for i in range(len(src))]


def test_concat_layout_validated() -> None:
    with pytest.raises(ValueError, match="layout must be one of"):
        ConcatenatedDataset(toy_source(n=3), 8, layout="cls")


def test_chained_and_filtered_sources() -> None:
    a, b = toy_source(n=5, seed=1), toy_source(n=7, seed=2)
    chain = ChainedSources([a, b])
    assert len(chain) == 12
    np.testing.assert_array_equal(chain.lengths, np.concatenate([a.lengths, b.lengths]))
    np.testing.assert_array_equal(chain[6], b[1])
    assert chain.accession(5) == b.accession(0)
    with pytest.raises(IndexError):
        chain[12]
    sub, removed = filter_lengths(chain, 10, 40)
    keep = [i for i in range(12) if 10 <= chain.lengths[i] <= 40]
    assert removed == 12 - len(keep) and len(sub) == len(keep)
    for k, i in enumerate(keep):
        np.testing.assert_array_equal(sub[k], chain[i])
        assert sub.accession(k) == chain.accession(i)


def test_collate_pads_to_batch_max() -> None:
    src = toy_source(n=6)
    ds = ProteinDataset(src, max_length=30, train=False)
    items = [ds[i] for i in (4, 0, 2)]
    batch = Collate(PAD)(items)
    lengths = [len(it["tokens"]) for it in items]
    assert batch["tokens"].shape == (3, max(lengths)) and batch["tokens"].dtype == torch.long
    assert batch["mask"].dtype == torch.bool
    assert batch["index"].tolist() == [4, 0, 2]
    for row, it in enumerate(items):
        n = lengths[row]
        assert torch.equal(batch["tokens"][row, :n], it["tokens"])
        assert bool(batch["mask"][row, :n].all()) and not bool(batch["mask"][row, n:].any())
        assert bool((batch["tokens"][row, n:] == PAD).all())
    bare = Collate(PAD)([torch.tensor([2, 6, 3]), torch.tensor([2, 3])])
    assert bare["tokens"].tolist() == [[2, 6, 3], [2, 3, PAD]] and bare["index"].tolist() == [
        -1,
        -1,
    ]
