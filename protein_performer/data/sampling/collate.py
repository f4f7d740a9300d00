"""Collate: pad a list of examples to the longest in the batch (dynamic padding), by the one
batch converter (:class:`protein_performer.data.batching.BatchConverter`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.batching import BatchConverter


class Collate:
    """Examples ``{"tokens": LongTensor [L_i], "index": int}`` -> a batch dict.

    Returns ``{"tokens": LongTensor [B, L], "mask": BoolTensor [B, L], "index": LongTensor [B]}``
    with ``L = max_i L_i``; ``mask`` is True on real tokens, padding holds ``pad_idx``.
    Bare LongTensors are accepted too (their ``index`` is -1: unknown).
    A class, not a closure, so DataLoader workers can pickle it.
    """

    def __init__(self, pad_idx: int = ALPHABET.pad_idx) -> None:
        self.convert = BatchConverter(pad_idx)

    def __call__(self, examples: Sequence[dict | torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(examples) == 0:
            raise ValueError("Collate got an empty batch")
        tokens = [e["tokens"] if isinstance(e, dict) else e for e in examples]
        index = [int(e["index"]) if isinstance(e, dict) else -1 for e in examples]
        batch = self.convert(tokens, index)
        return {"tokens": batch.tokens, "mask": batch.mask, "index": batch.index}
