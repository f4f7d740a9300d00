"""Model rows of a protein: its windows (causal or centered), masked copies, or one copy per
residue with that residue masked (pseudo-likelihood); each row's targets are the tokens it
scores (:data:`~protein_performer.masking.IGNORE` elsewhere).

Every token of a protein is scored exactly once over its rows (:mod:`~.windows`).
"""

from __future__ import annotations

import numpy as np
import torch

from protein_performer.data.alphabet import ALPHABET
from protein_performer.masking import IGNORE, mask_tokens
from protein_performer.runner.windows import centered_windows, sliding_windows
from protein_performer.seeding import mix_seed

Piece = tuple[int, np.ndarray, np.ndarray]  # (slot, inputs [Lw], targets [Lw]) of one model row


def causal_pieces(
    tokens: np.ndarray, window: int, stride: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(inputs, targets) per causal window: targets[t] = tokens[start + t + 1] if scored.

    The logits at position t predict the next token; each target in the window's scored span
    appears exactly once over all windows; ``<cls>`` (position 0) is never a target.
    """
    out = []
    for start, end, score_from in sliding_windows(len(tokens), window, stride):
        inputs = tokens[start:end]
        targets = np.full(end - start, IGNORE, dtype=np.int64)
        lo = max(score_from - start - 1, 0)  # first logit whose target is >= score_from
        targets[lo : end - start - 1] = tokens[start + lo + 1 : end]
        out.append((inputs, targets))
    return out


def masked_pieces(
    inputs: np.ndarray, targets: np.ndarray, window: int, stride: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(inputs, targets) per centered window of an already masked protein."""
    out = []
    for start, end, lo, hi in centered_windows(len(inputs), window, stride):
        t = np.full(end - start, IGNORE, dtype=np.int64)
        t[lo - start : hi - start] = targets[lo:hi]
        out.append((inputs[start:end], t))
    return out


def pseudo_pieces(
    tokens: np.ndarray, window: int, stride: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (inputs, targets) per residue: that residue masked and scored, the rest intact."""
    out = []
    is_residue = tokens >= ALPHABET.first_residue_idx
    for start, end, lo, hi in centered_windows(len(tokens), window, stride):
        positions = np.flatnonzero(is_residue[lo:hi]) + lo
        if positions.size == 0:
            continue
        k = np.arange(positions.size)
        block = np.tile(tokens[start:end], (positions.size, 1))  # [k, Lw]
        block[k, positions - start] = ALPHABET.mask_idx
        tgt = np.full(block.shape, IGNORE, dtype=np.int64)
        tgt[k, positions - start] = tokens[positions]
        out.extend(zip(block, tgt))
    return out


def mask_protein(
    tokens: np.ndarray, *, prob: float, seed: int, masking: int, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mask one protein reproducibly, every selected residue as <mask>: (inputs, targets) int64."""
    gen = torch.Generator().manual_seed(mix_seed(seed, masking, index))
    t = torch.from_numpy(tokens).unsqueeze(0)
    inputs, targets = mask_tokens(
        t, torch.ones_like(t, dtype=torch.bool), prob=prob, generator=gen, corrupt=False
    )
    return inputs[0].numpy().astype(np.int64), targets[0].numpy().astype(np.int64)
