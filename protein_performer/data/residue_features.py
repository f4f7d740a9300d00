"""Sequence-only features for baselines: amino-acid composition and one-hot residue windows.

Residue codes: 0-19 the standard amino acids (alphabetical, the alphabet's token order),
:data:`OTHER` (20) anything else. The benchmarks' probes and fine-tuning's baselines share
these (from letters and from tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from protein_performer.data.alphabet import ALPHABET, STANDARD_AMINO_ACIDS

N_STANDARD = len(STANDARD_AMINO_ACIDS)
OTHER = N_STANDARD

_LETTER_CODES = np.full(256, OTHER, dtype=np.int64)
for _k, _aa in enumerate(STANDARD_AMINO_ACIDS):
    _LETTER_CODES[ord(_aa)] = _LETTER_CODES[ord(_aa.lower())] = _k


def sequence_codes(sequence: str) -> np.ndarray:
    """int64 [L]: the residue codes of a sequence of letters (either case)."""
    return _LETTER_CODES[np.frombuffer(sequence.encode("ascii", "replace"), dtype=np.uint8)]


def token_codes(tokens: np.ndarray) -> np.ndarray:
    """int64 [L]: the residue codes of token ids (specials and non-standard residues: OTHER)."""
    codes = np.asarray(tokens).astype(np.int64) - ALPHABET.first_residue_idx
    return np.where((codes >= 0) & (codes < N_STANDARD), codes, OTHER)


def composition(codes: Sequence[np.ndarray]) -> np.ndarray:
    """float64 [N, 20]: each protein's fraction of each standard amino acid."""
    out = np.zeros((len(codes), N_STANDARD))
    for n, c in enumerate(codes):
        out[n] = np.bincount(c, minlength=OTHER + 1)[:N_STANDARD] / max(len(c), 1)
    return out


def onehot_windows(codes: np.ndarray, half_width: int, off_end: int = OTHER + 1) -> np.ndarray:
    """float32 [L, (2 w + 1) * (off_end + 1)]: one-hot codes at offsets -w..w around each
    position (window-major); positions beyond the ends read ``off_end`` (a symbol of its own
    by default, or ``OTHER``)."""
    length = len(codes)
    symbols = off_end + 1
    padded = np.concatenate([np.full(half_width, off_end), codes, np.full(half_width, off_end)])
    width = 2 * half_width + 1
    out = np.zeros((length, width * symbols), dtype=np.float32)
    rows = np.arange(length)
    for o in range(width):
        out[rows, o * symbols + padded[rows + o]] = 1.0
    return out
