"""Tokenised proteins -> padded batches, and which rows share a batch.

:class:`BatchConverter` is the one place rows of token ids become ``(tokens, mask)`` (ESM's
``BatchConverter``, after tokenising); :func:`pack` is the one length-sorted packer under a
padded-size budget, linear (``B * L``: feed-forward, linear attention) or quadratic
(``B * L^2``: attention matrices). Training's collate and token-budget sampler use both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from protein_performer.data.alphabet import ALPHABET

Cost = Literal["linear", "quadratic"]
COSTS = ("linear", "quadratic")


@dataclass
class Batch:
    """``tokens`` LongTensor [B, L] (padding holds ``pad_idx``), ``mask`` BoolTensor [B, L]
    (True on real tokens), ``index`` LongTensor [B]: the caller's row ids (stays on the CPU)."""

    tokens: Tensor
    mask: Tensor
    index: Tensor

    def to(self, device: torch.device | str) -> Batch:
        """The tokens and mask on ``device`` (``index`` stays where it is, for numpy lookups)."""
        return Batch(
            self.tokens.to(device, non_blocking=True),
            self.mask.to(device, non_blocking=True),
            self.index,
        )

    @property
    def lengths(self) -> Tensor:
        """LongTensor [B]: real tokens per row."""
        return self.mask.sum(1)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


class BatchConverter:
    """Rows of token ids (each ``[L_i]``, numpy or tensor) -> a right-padded :class:`Batch`.

    ``L = max_i L_i``; ``index`` defaults to ``0..B-1``. A class, not a closure, so DataLoader
    workers can pickle it.
    """

    def __init__(self, pad_idx: int = ALPHABET.pad_idx) -> None:
        self.pad_idx = int(pad_idx)

    def __call__(
        self, rows: Sequence[np.ndarray | Tensor], index: Sequence[int] | Tensor | None = None
    ) -> Batch:
        if len(rows) == 0:
            raise ValueError("BatchConverter got an empty batch")
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        width = int(lengths.max())
        tokens = torch.full((len(rows), width), self.pad_idx, dtype=torch.long)
        for b, row in enumerate(rows):
            tokens[b, : len(row)] = torch.as_tensor(row)
        mask = torch.arange(width)[None, :] < lengths[:, None]
        ids = torch.arange(len(rows)) if index is None else torch.as_tensor(index)
        if ids.shape != (len(rows),):
            raise ValueError(f"index must hold one id per row ({len(rows)}), got {ids.shape}")
        return Batch(tokens, mask, ids.to(torch.long))


def _costs(lengths: np.ndarray, cost: Cost) -> np.ndarray:
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {list(COSTS)}, got {cost!r}")
    width = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
    return width if cost == "linear" else width * width


def pack(
    lengths: np.ndarray | Sequence[int],
    budget: int,
    cost: Cost = "linear",
    *,
    longest_first: bool = True,
    max_rows: int | None = None,
) -> Iterator[np.ndarray]:
    """Index batches of rows sorted by length (stable): longest first, or shortest first
    with ``longest_first=False``; each batch as large as ``B * cost(L_max) <= budget`` allows
    (``cost(L)``: ``L`` linear, ``L**2`` quadratic), at least one row, at most ``max_rows``.

    Shortest first, each batch's longest row is its last, so the largest batch is found by a
    binary search (training sorts millions of examples this way).
    """
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    lengths = np.asarray(lengths, dtype=np.int64)
    unit = _costs(lengths, cost)
    cap = len(lengths) if max_rows is None else max(1, int(max_rows))
    order = np.argsort(-lengths if longest_first else lengths, kind="stable")
    sorted_cost = unit[order]
    n, s = len(order), 0
    while s < n:
        if longest_first:
            e = s + min(cap, max(1, budget // int(sorted_cost[s])))
        else:
            lo, hi = s + 1, min(n, s + cap)  # f(e) = cost[e - 1] * (e - s) grows with e
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if int(sorted_cost[mid - 1]) * (mid - s) <= budget:
                    lo = mid
                else:
                    hi = mid - 1
            e = lo
        yield order[s : min(e, n)]
        s = e
