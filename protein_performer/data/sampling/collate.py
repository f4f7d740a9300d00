"""Collate: pad a list of examples to the longest in the batch (dynamic padding)."""

from __future__ import annotations

from typing import Sequence

import torch

from protein_performer.data.alphabet import ALPHABET


class Collate:
    """Examples ``{"tokens": LongTensor [L_i], "index": int}`` -> a batch dict.

    Returns ``{"tokens": LongTensor [B, L], "mask": BoolTensor [B, L], "index": LongTensor [B]}``
    with ``L = max_i L_i``; ``mask`` is True on real tokens, padding holds ``pad_idx``.
    Bare LongTensors are accepted too (their ``index`` is -1: unknown).
    A class, not a closure, so DataLoader workers can pickle it.
    """

    def __init__(self, pad_idx: int = ALPHABET.pad_idx) -> None:
        self.pad_idx = int(pad_idx)

    def __call__(self, examples: Sequence[dict | torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(examples) == 0:
            raise ValueError("Collate got an empty batch")
        tokens = [e["tokens"] if isinstance(e, dict) else e for e in examples]
        index = [int(e["index"]) if isinstance(e, dict) else -1 for e in examples]
        lengths = torch.tensor([len(t) for t in tokens], dtype=torch.long)
        width = int(lengths.max())
        out = torch.full((len(tokens), width), self.pad_idx, dtype=torch.long)
        for row, t in enumerate(tokens):
            out[row, : len(t)] = t
        mask = torch.arange(width)[None, :] < lengths[:, None]
        return {"tokens": out, "mask": mask, "index": torch.tensor(index, dtype=torch.long)}
