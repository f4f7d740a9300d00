"""Contact metrics with known answers: APC by hand, planted maps, random maps, bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from protein_performer.benchmarks.contacts import (
    ContactChain,
    ContactRegression,
    apc,
    attention_features,
    contact_density,
    density_table,
    head_precisions,
    per_chain_table,
    precision_at,
    summarise,
    symmetrize,
)


def test_apc_on_a_hand_computed_4x4_map():
    a = np.array([[0, 1, 2, 3], [1, 0, 1, 2], [2, 1, 0, 1], [3, 2, 1, 0]], dtype=float)
    # row sums 6, 4, 4, 6; total 20; APC_ij = a_ij - r_i r_j / 20
    expected = np.array(
        [
            [-1.8, -0.2, 0.8, 1.2],
            [-0.2, -0.8, 0.2, 0.8],
            [0.8, 0.2, -0.8, -0.2],
            [1.2, 0.8, -0.2, -1.8],
        ]
    )
    np.testing.assert_allclose(apc(a), expected, atol=1e-12)
    # a causal (lower-triangular) map is symmetrised first: tril(a) + tril(a)^T = a
    np.testing.assert_allclose(attention_features(np.tril(a)), expected, atol=1e-6)
    np.testing.assert_allclose(symmetrize(np.tril(a)), a)


def random_contacts(rng, length, density=0.15):
    """A symmetric random contact map with the diagonal band of a chain (dense enough that
    every range holds more than L contacts)."""
    c = np.triu(rng.random((length, length)) < density, 1)
    c |= np.eye(length, k=1, dtype=bool) | np.eye(length, k=2, dtype=bool)
    return c | c.T | np.eye(length, dtype=bool)


def test_planted_contacts_give_precision_one_and_random_maps_the_density():
    rng = np.random.default_rng(0)
    contacts = random_contacts(rng, 120)
    for low, high in [(24, None), (12, 24)]:
        for k in (1, 2, 5):
            assert precision_at(contacts.astype(float), contacts, low, high, k) == 1.0
        # a random ranking's precision averages the density of contacts in the range
        density = contact_density(contacts, low, high)
        p = [precision_at(rng.random(contacts.shape), contacts, low, high, 1) for _ in range(400)]
        se = np.std(p) / np.sqrt(len(p))
        assert abs(np.mean(p) - density) < 4 * se, (np.mean(p), density)


def test_precision_counts_the_top_l_over_k_pairs_of_the_range():
    length = 30
    contacts = np.zeros((length, length), dtype=bool)
    scores = np.zeros((length, length))
    # the 6 best-scored long-range pairs (L/5 = 6): 3 contacts, 3 not
    for n, (i, j) in enumerate([(0, 29), (0, 28), (1, 29), (0, 27), (1, 28), (2, 29)]):
        scores[i, j] = 10 - n
        contacts[i, j] = contacts[j, i] = n % 2 == 0
    contacts[3, 29] = True  # a contact ranked below the top 6
    assert precision_at(scores, contacts, 24, None, 5) == 0.5
    assert precision_at(scores, contacts, 12, 24, 5) == 0.0
    assert np.isnan(precision_at(scores[:10, :10], contacts[:10, :10], 24, None, 5))


def chains_with_a_planted_head(n_chains, seed, planted=2, n_heads=6, length=80):
    """Chains whose feature ``planted`` is the (APC-corrected) true contact map + noise."""
    rng = np.random.default_rng(seed)
    out = []
    for n in range(n_chains):
        contacts = random_contacts(rng, length)
        maps = rng.random((n_heads, length, length))
        maps[planted] = contacts + 0.1 * rng.random((length, length))
        maps /= maps.sum(-1, keepdims=True)  # rows of an attention map sum to 1
        out.append(ContactChain(f"c{seed}_{n}", attention_features(maps), contacts))
    return out


def test_regression_on_a_planted_head_recovers_every_contact():
    train = chains_with_a_planted_head(5, seed=1)
    test = chains_with_a_planted_head(5, seed=2)
    reg = ContactRegression().fit(train)
    assert int(np.argmax(np.abs(reg.weights))) == 2
    table = per_chain_table("model", test, [reg.predict(c) for c in test])
    assert (table["precision"] == 1.0).all()
    assert int(np.argmax(head_precisions(train))) == 2


def test_summary_means_over_chains_with_a_bootstrap_ci():
    chains = chains_with_a_planted_head(6, seed=3)
    per_chain = density_table([(c.name, c.contacts) for c in chains])
    summary = summarise(per_chain, n_boot=200)
    assert set(summary["k"]) == {"L/5", "L/2", "L"} and set(summary["range"]) == {"long", "medium"}
    for _, row in summary.iterrows():
        values = per_chain[(per_chain["range"] == row["range"]) & (per_chain["k"] == row["k"])]
        assert row["precision"] == pytest.approx(values["precision"].mean())
        assert values["precision"].min() <= row["ci_low"] <= row["precision"] <= row["ci_high"]
        assert row["ci_high"] <= values["precision"].max()
        assert row["n_chains"] == 6
