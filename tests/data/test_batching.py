"""pack (budgets linear and quadratic, order) and BatchConverter (padding, mask, index)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protein_performer import runner
from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.batching import Batch, BatchConverter, pack


def _batches(lengths, budget, cost="linear", **kw) -> list[list[int]]:
    return [b.tolist() for b in pack(np.asarray(lengths), budget, cost, **kw)]


def test_pack_linear_longest_first():
    lengths = [3, 10, 5, 10, 2, 7]
    # longest first (stable on ties): 1, 3 (10), 5 (7), 2 (5), 0 (3), 4 (2)
    assert _batches(lengths, 20) == [[1, 3], [5, 2], [0, 4]]
    assert _batches(lengths, 21) == [[1, 3], [5, 2, 0], [4]]
    # a row over budget still gets a batch of its own
    assert _batches(lengths, 4) == [[1], [3], [5], [2], [0], [4]]


def test_pack_quadratic_budget():
    lengths = [4, 8, 2, 3]
    # 8**2 = 64 alone; then 4**2 * 3 = 48 <= 50 fits three
    assert _batches(lengths, 50, "quadratic") == [[1], [0, 3, 2]]
    assert _batches(lengths, 64, "quadratic") == [[1], [0, 3, 2]]
    assert _batches(lengths, 31, "quadratic") == [[1], [0], [3, 2]]


def test_pack_shortest_first_and_caps():
    lengths = [3, 10, 5, 10, 2, 7]
    # ascending 4 (2), 0 (3), 2 (5), 5 (7), 1, 3 (10): each batch's last row is its longest
    assert _batches(lengths, 15, longest_first=False) == [[4, 0, 2], [5], [1], [3]]
    assert _batches(lengths, 20, longest_first=False) == [[4, 0, 2], [5, 1], [3]]
    assert _batches(lengths, 20, longest_first=False, max_rows=2) == [[4, 0], [2, 5], [1, 3]]
    assert _batches(lengths, 100, max_rows=4) == [[1, 3, 5, 2], [0, 4]]
    # quadratic, ascending: 2,3,5 -> 25 * 3 = 75 <= 80; 7 -> 49; 10,10 -> 200 > 150
    assert _batches(lengths, 150, "quadratic", longest_first=False) == [[4, 0, 2], [5], [1], [3]]


@pytest.mark.parametrize("longest_first", [True, False])
@pytest.mark.parametrize("cost", ["linear", "quadratic"])
def test_pack_covers_every_row_once_within_budget(cost, longest_first):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=300)
    budget = 4000
    batches = list(pack(lengths, budget, cost, longest_first=longest_first))
    assert sorted(np.concatenate(batches).tolist()) == list(range(300))
    power = 1 if cost == "linear" else 2
    for b in batches:
        assert len(b) == 1 or len(b) * int(lengths[b].max()) ** power <= budget
    maxima = [int(lengths[b].max()) for b in batches]
    assert maxima == sorted(maxima, reverse=longest_first)


def test_pack_rejects_bad_arguments():
    with pytest.raises(ValueError, match="cost must be one of"):
        list(pack(np.array([1, 2]), 10, "cubic"))
    with pytest.raises(ValueError, match="budget must be >= 1"):
        list(pack(np.array([1, 2]), 0))
    assert list(pack(np.zeros(0, dtype=np.int64), 10)) == []


def test_batch_converter_pads_and_masks():
    rows = [np.array([0, 5, 6, 2]), torch.tensor([0, 7, 2]), np.array([0, 2], dtype=np.uint8)]
    batch = BatchConverter()(rows, index=[4, 9, 1])
    pad = ALPHABET.pad_idx
    assert batch.tokens.dtype == torch.long and batch.mask.dtype == torch.bool
    assert batch.tokens.tolist() == [[0, 5, 6, 2], [0, 7, 2, pad], [0, 2, pad, pad]]
    assert batch.mask.tolist() == [
        [True, True, True, True],
        [True, True, True, False],
        [True, True, False, False],
    ]
    assert batch.index.tolist() == [4, 9, 1] and batch.lengths.tolist() == [4, 3, 2]
    assert len(batch) == 3
    default = BatchConverter(pad_idx=-7)(rows[1:])
    assert default.index.tolist() == [0, 1] and default.tokens[1, 2:].tolist() == [-7]
    moved = batch.to("cpu")
    assert isinstance(moved, Batch) and torch.equal(moved.tokens, batch.tokens)
    with pytest.raises(ValueError, match="empty batch"):
        BatchConverter()([])
    with pytest.raises(ValueError, match="one id per row"):
        BatchConverter()(rows, index=[1])


def test_runner_reexports_the_same_objects():
    assert (runner.Batch, runner.BatchConverter, runner.pack) == (Batch, BatchConverter, pack)
