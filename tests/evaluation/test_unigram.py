"""Unigram baseline: normalisation over the scored vocabulary, smoothing, exact metrics."""

from __future__ import annotations

import numpy as np
import pytest
from evaluation_toys import random_proteins

from protein_performer.data.alphabet import ALPHABET
from protein_performer.evaluation.unigram import (
    token_counts,
    unigram_log_probs,
    unigram_residue_metrics,
)


def test_token_counts_counts_residues_and_specials() -> None:
    src = random_proteins([4, 7, 1])
    counts = token_counts(src)
    expected = np.bincount(np.concatenate([src[i] for i in range(3)]), minlength=len(ALPHABET))
    expected[ALPHABET.cls_idx] = expected[ALPHABET.eos_idx] = 3
    np.testing.assert_array_equal(counts, expected)


def test_log_probs_laplace_and_vocabulary() -> None:
    counts = np.zeros(len(ALPHABET))
    counts[ALPHABET.residue_idx[:20]] = np.arange(1, 21)
    counts[ALPHABET.eos_idx] = 7
    lp = unigram_log_probs(counts)
    res = ALPHABET.residue_idx
    ref = np.concatenate([np.arange(1, 21), np.zeros(5)]) + 1.0
    np.testing.assert_allclose(lp[res], np.log(ref / ref.sum()))
    assert np.isneginf(lp[ALPHABET.special_idx]).all()
    lp_eos = unigram_log_probs(counts, include_eos=True)
    ref_eos = np.concatenate([[7.0], ref - 1]) + 1.0
    np.testing.assert_allclose(lp_eos[[ALPHABET.eos_idx, *res]], np.log(ref_eos / ref_eos.sum()))
    # Normalised frequencies: one pseudo-count = the rarest observed frequency.
    freq = counts / counts.sum()
    np.testing.assert_allclose(np.exp(unigram_log_probs(freq)[res]).sum(), 1.0)


def test_log_probs_errors() -> None:
    with pytest.raises(ValueError, match="31 entries"):
        unigram_log_probs(np.ones(5))
    with pytest.raises(ValueError, match="<eos>"):
        unigram_log_probs(
            np.ones(len(ALPHABET)) * (np.arange(len(ALPHABET)) >= 6), include_eos=True
        )


def test_residue_metrics_match_direct_sum() -> None:
    src = random_proteins([30, 50, 9], seed=3)
    counts = token_counts(random_proteins([200, 100], seed=4))
    lp = unigram_log_probs(counts)
    allres = np.concatenate([src[i] for i in range(len(src))])
    m = unigram_residue_metrics(src, lp)
    nll = -lp[allres].mean()
    assert m["n_tokens"] == allres.size
    assert m["nll_per_token"] == pytest.approx(nll)
    assert m["perplexity"] == pytest.approx(np.exp(nll))
    assert m["accuracy"] == pytest.approx(np.mean(allres == np.argmax(lp)))
