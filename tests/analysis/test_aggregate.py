"""Aggregation of attention into amino-acid statistics, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protein_performer.analysis.aggregate import (
    AMINO_ACIDS,
    GROUPED_ORDER,
    AttentionAggregates,
    direct_ratio,
    head_shares,
    reorder,
    vig_similarity,
)
from protein_performer.data.alphabet import ALPHABET

A, C, D, G = (AMINO_ACIDS.index(x) for x in "ACDG")


def _hand_example():
    """<cls> A C A D G <eos>, one head; rows are queries, columns targets (positions 0..6)."""
    tokens = torch.tensor(
        [[ALPHABET.cls_idx, *ALPHABET.encode("ACADG").tolist(), ALPHABET.eos_idx]]
    )
    a = torch.zeros(1, 1, 7, 7, dtype=torch.float64)
    a[0, 0, 0, 1] = 1.0  # <cls> query: excluded
    a[0, 0, 1, [0, 2, 3]] = torch.tensor(
        [0.45, 0.05, 0.5], dtype=torch.float64
    )  # A: ->cls excluded, ->C < 0.1, ->A
    a[0, 0, 2, [1, 4]] = torch.tensor([0.2, 0.8], dtype=torch.float64)  # C: ->A, ->D
    a[0, 0, 3, 5] = 1.0  # A: ->G
    a[0, 0, 4, [2, 4, 6]] = torch.tensor(
        [0.3, 0.4, 0.3], dtype=torch.float64
    )  # D: ->C, ->D, ->eos excluded
    a[0, 0, 5, [1, 2, 5]] = torch.tensor(
        [0.6, 0.1, 0.3], dtype=torch.float64
    )  # G: ->A, ->C (= threshold, kept), ->G
    a[0, 0, 6, 0] = 1.0  # <eos> query: excluded
    return tokens, a


def test_hand_made_attention_gives_hand_computed_matrices():
    tokens, a = _hand_example()
    agg = AttentionAggregates(n_layers=1, n_heads=1, threshold=0.1)
    agg.update([a], tokens, torch.ones_like(tokens, dtype=torch.bool))

    # Kept weights: A->A .5, C->A .2, C->D .8, A->G 1, D->C .3, D->D .4, G->A .6, G->C .1, G->G .3
    expected_pairs = np.zeros((20, 20))
    for (q, t), w in {
        (A, A): 0.5,
        (C, A): 0.2,
        (C, D): 0.8,
        (A, G): 1.0,
        (D, C): 0.3,
        (D, D): 0.4,
        (G, A): 0.6,
        (G, C): 0.1,
        (G, G): 0.3,
    }.items():
        expected_pairs[q, t] = w
    np.testing.assert_allclose(agg.pair_mass[0], expected_pairs, atol=1e-12)

    # Vig numerator per target type: A .5+.2+.6, C .3+.1, D .8+.4, G 1+.3; total 4.2
    expected_target = np.zeros(20)
    expected_target[[A, C, D, G]] = [1.3, 0.4, 1.2, 1.3]
    np.testing.assert_allclose(agg.target_mass[0], expected_target, atol=1e-12)
    np.testing.assert_allclose(agg.total_weight, [4.2])
    shares, kept = head_shares(agg.target_mass)
    assert kept.tolist() == [True]
    np.testing.assert_allclose(shares[0, [A, C, D, G]], np.array([1.3, 0.4, 1.2, 1.3]) / 4.2)

    # residues seen as queries: A twice, C, D, G once
    assert agg.residue_counts[[A, C, D, G]].tolist() == [2, 1, 1, 1]
    assert agg.residue_counts.sum() == 5 and agg.n_proteins == 1

    # direct mode: row sums A 1.5, C 1.0, D 0.7, G 1.0; column sums A 1.3, C .4, D 1.2, G 1.3
    ratio = direct_ratio(agg.pair_mass[0])
    assert ratio[A, G] == pytest.approx(1.0 * 4.2 / (1.5 * 1.3))
    assert ratio[C, D] == pytest.approx(0.8 * 4.2 / (1.0 * 1.2))
    assert ratio[G, C] == pytest.approx(0.1 * 4.2 / (1.0 * 0.4))
    assert ratio[A, C] == 0.0  # expected > 0, observed 0
    assert np.isnan(ratio[AMINO_ACIDS.index("W"), A])  # W never seen: no expectation
    log = direct_ratio(agg.pair_mass[0], log=True)
    assert log[A, G] == pytest.approx(np.log2(1.0 * 4.2 / (1.5 * 1.3)))


def test_threshold_zero_keeps_everything_and_padding_is_ignored():
    tokens, a = _hand_example()
    # pad the protein to length 9 with attention onto the pads that must be ignored
    tok = torch.cat([tokens, torch.zeros(1, 2, dtype=torch.long)], dim=1)
    big = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    big[..., :7, :7] = a
    big[0, 0, 1, 7] = 0.9
    mask = tok != ALPHABET.pad_idx
    agg = AttentionAggregates(1, 1, threshold=0.0)
    agg.update([big], tok, mask)
    # now A->C 0.05 counts too; cls/eos/pad targets still excluded
    assert agg.pair_mass[0, A, C] == pytest.approx(0.05)
    assert agg.total_weight[0] == pytest.approx(4.25)


def test_head_exclusion_and_similarity_against_numpy():
    rng = np.random.default_rng(0)
    mass = rng.random((6, 20)) * 10
    mass[2] *= 1e-3  # total ~0.1: excluded
    mass[4] = 0.0  # nothing at all: excluded
    shares, kept = head_shares(mass, min_total_weight=1.0)
    assert kept.tolist() == [True, True, False, True, False, True]
    assert np.isnan(shares[~kept]).all()
    np.testing.assert_allclose(shares[kept].sum(axis=1), 1.0)
    sim = vig_similarity(shares, kept)
    ref = np.corrcoef(shares[kept].T)
    np.testing.assert_allclose(sim, ref, atol=1e-12)
    # fewer than 3 heads: undefined
    assert np.isnan(vig_similarity(shares[:2])).all()


def test_constant_share_gives_nan_row():
    shares = np.random.default_rng(1).random((5, 20))
    shares[:, 3] = 0.05
    sim = vig_similarity(shares)
    assert np.isnan(sim[3]).all() and np.isnan(sim[:, 3]).all()
    assert np.isfinite(np.delete(np.delete(sim, 3, 0), 3, 1)).all()


def test_update_checks_shapes_and_merge_adds():
    tokens, a = _hand_example()
    agg = AttentionAggregates(2, 1)
    with pytest.raises(ValueError, match="2 layers"):
        agg.update([a], tokens)
    one = AttentionAggregates(1, 1)
    one.update([a], tokens)
    two = AttentionAggregates.from_dict(one.to_dict()).merge(one)
    np.testing.assert_allclose(two.pair_mass, 2 * one.pair_mass)
    assert two.n_proteins == 2


def test_reorder_groups():
    m = np.arange(400.0).reshape(20, 20)
    r = reorder(m)
    i, j = AMINO_ACIDS.index(GROUPED_ORDER[0]), AMINO_ACIDS.index(GROUPED_ORDER[5])
    assert r[0, 5] == m[i, j]
    assert GROUPED_ORDER.startswith("AVLIMC")
