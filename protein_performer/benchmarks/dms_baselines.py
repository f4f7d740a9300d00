"""Context-free variant scores a language model must beat, on the same rows as the model.

- ``blosum62``: the sum over a variant's substitutions of BLOSUM62(wild type, mutant)
  (Henikoff & Henikoff 1992, via ``Bio.Align.substitution_matrices``);
- ``unigram``: the sum of log f(mutant) - log f(wild type) with f the training corpus's
  residue frequencies (the checkpoint's ``residue_frequencies``; the site-independent model
  without sites).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from protein_performer.benchmarks.dms_data import Assay
from protein_performer.data.alphabet import ALPHABET


@lru_cache(maxsize=4)
def substitution_table(name: str = "BLOSUM62") -> np.ndarray:
    """float64 [256, 256]: the matrix indexed by ASCII codes of residue letters (0 elsewhere)."""
    from Bio.Align import substitution_matrices

    matrix = substitution_matrices.load(name)
    table = np.zeros((256, 256))
    for a in matrix.alphabet:
        for b in matrix.alphabet:
            table[ord(a), ord(b)] = matrix[a][b]
    return table


def _codes(assay: Assay) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 [N, K] wild-type and mutant ASCII codes, and the bool [N, K] mask of real sites."""
    real = assay.sites >= 0
    wt = np.frombuffer(assay.wild_type.encode(), np.uint8)[np.where(real, assay.sites, 0)]
    alt = np.zeros(assay.sites.shape, np.uint8)
    alt[real] = np.frombuffer("".join(assay.alts[real]).encode(), np.uint8)
    return wt, alt, real


def blosum62_scores(assay: Assay) -> np.ndarray:
    """float64 [N]: the summed BLOSUM62 score of each variant's substitutions."""
    wt, alt, real = _codes(assay)
    return (substitution_table("BLOSUM62")[wt, alt] * real).sum(axis=1)


def unigram_scores(assay: Assay, log_probs: np.ndarray) -> np.ndarray:
    """float64 [N]: sum of log f(mutant) - log f(wild type); ``log_probs`` [V] by token index
    (:func:`protein_performer.evaluation.unigram.baseline_log_probs`)."""
    wt, alt, real = _codes(assay)
    per_code = np.zeros(256)
    for letter, idx in zip(ALPHABET.tokens[ALPHABET.first_residue_idx :], ALPHABET.residue_idx):
        per_code[ord(letter)] = log_probs[idx]
    return ((per_code[alt] - per_code[wt]) * real).sum(axis=1)
