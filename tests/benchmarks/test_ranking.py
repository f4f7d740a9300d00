"""Spearman with its bootstrap CI, ProteinGym's NDCG, and the BLOSUM62 / unigram baselines."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from protein_performer.benchmarks.dms_baselines import blosum62_scores, unigram_scores
from protein_performer.benchmarks.dms_data import Assay, every_single_mutant
from protein_performer.benchmarks.ranking import (
    boot_count,
    bootstrap_spearman,
    ndcg,
    rank_metrics,
    spearman,
)
from protein_performer.data.alphabet import ALPHABET


def _reference_ci(s, m, n_boot, seed, level=0.95):
    """The float64 reference: scipy's Spearman on each resample, drawn as the code draws."""
    rng = np.random.default_rng(seed)
    rhos = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(s), len(s))
        rhos.append(spearmanr(s[idx], m[idx]).statistic)
    tail = (1 - level) / 2 * 100
    return np.percentile(rhos, [tail, 100 - tail])


def test_bootstrap_equals_scipy_on_every_resample_with_ties() -> None:
    rng = np.random.default_rng(3)
    m = rng.normal(size=60)
    s = np.round(m + rng.normal(size=60), 0)  # many ties in the scores
    got = bootstrap_spearman(s, m, n_boot=200, seed=7)
    np.testing.assert_allclose(got, _reference_ci(s, m, 200, 7), rtol=0, atol=1e-12)
    both = bootstrap_spearman(np.stack([s, -s]), m, n_boot=200, seed=7)
    np.testing.assert_allclose(both[1], -got[::-1], atol=1e-12)


def test_toy_model_with_hand_set_scores() -> None:
    # Scores in the measured order except one swapped pair: rho = 1 - 6 * 2 / (n (n^2 - 1)).
    measured = np.arange(10, dtype=float)
    scores = measured.copy()
    scores[[0, 1]] = scores[[1, 0]]
    result = rank_metrics({"toy": scores, "perfect": measured * 2}, measured, n_boot=300)
    toy = result["toy"]
    assert toy.n == 10 and toy.spearman == pytest.approx(1 - 12 / 990)
    np.testing.assert_allclose([toy.ci_low, toy.ci_high], _reference_ci(scores, measured, 300, 0))
    perfect = result["perfect"]
    assert [perfect.spearman, perfect.ci_low, perfect.ci_high] == pytest.approx([1.0] * 3)
    # NaN rows leave every predictor's rows (the same rows for all).
    scores_nan = scores.copy()
    scores_nan[4] = np.nan
    assert rank_metrics({"a": scores_nan, "b": scores}, measured)["b"].n == 9


def test_spearman_degenerate() -> None:
    assert np.isnan(spearman(np.ones(5), np.arange(5)))
    assert spearman(np.arange(5), np.arange(5)[::-1]) == pytest.approx(-1.0)


def test_ndcg_as_proteingym_defines_it() -> None:
    measured = np.arange(20, dtype=float)  # gains i / 19; k = floor(20 / 10) = 2
    assert ndcg(measured, measured) == pytest.approx(1.0)
    scores = np.zeros(20)
    scores[[6, 3]] = [2.0, 1.0]  # the model's top 2: items 6 then 3
    dcg = 6 / 19 + (3 / 19) / np.log2(3)
    idcg = 1.0 + (18 / 19) / np.log2(3)
    assert ndcg(scores, measured) == pytest.approx(dcg / idcg)
    assert np.isnan(ndcg(np.arange(5), np.arange(5)))  # k = 0


def test_boot_count_caps_big_sets() -> None:
    assert boot_count(14_483, 1000) == 1000
    assert boot_count(530_737, 1000) == 50
    assert 50 < boot_count(53_468, 1000) < 1000


def test_baselines_known_values() -> None:
    assay = Assay(
        "toy",
        "MKW",
        np.array([[0, 2], [1, -1]]),
        np.array([["A", "F"], ["R", ""]], dtype=object),
        np.array([1.0, 2.0]),
    )
    # BLOSUM62: M->A -1, W->F 1, K->R 2.
    np.testing.assert_array_equal(blosum62_scores(assay), [0.0, 2.0])
    lp = np.full(len(ALPHABET), -9.0)
    for letter, value in {"M": -3.0, "A": -2.0, "W": -4.0, "F": -3.5, "K": -2.5, "R": -2.7}.items():
        lp[ALPHABET.index(letter)] = value
    np.testing.assert_allclose(unigram_scores(assay, lp), [(-2 + 3) + (-3.5 + 4), -2.7 + 2.5])
    singles = every_single_mutant("wt", "W")
    assert blosum62_scores(singles).max() == 2.0  # W->Y
