"""Probes, baselines and metrics with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from protein_performer.benchmarks.probes import (
    aa_composition,
    classification_metrics,
    held_out,
    metric_rows,
    onehot_windows,
    probe,
    probe_table,
    residue_indices,
)
from protein_performer.data.alphabet import STANDARD_AMINO_ACIDS


def test_metrics_on_a_hand_computed_example():
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    m = classification_metrics(y, np.stack([1 - p1, p1], 1), np.array([0, 1]))
    # predictions 0 0 0 1: TP 1, TN 2, FP 0, FN 1
    assert m["accuracy"] == 0.75
    assert m["balanced_accuracy"] == 0.75
    assert m["mcc"] == pytest.approx(2 / np.sqrt(12))
    assert m["auroc"] == 0.75  # 3 of the 4 (positive, negative) pairs ordered right


def test_baseline_features():
    comp = aa_composition(["AAC", "W"])
    assert comp.shape == (2, 20)
    assert comp[0, STANDARD_AMINO_ACIDS.index("A")] == pytest.approx(2 / 3)
    assert comp[1, STANDARD_AMINO_ACIDS.index("W")] == 1.0
    np.testing.assert_array_equal(residue_indices("AYX"), [0, 19, 20])
    w = onehot_windows("ACD", half_width=1)  # offsets -1, 0, +1, 22 symbols each
    assert w.shape == (3, 66) and (w.sum(1) == 3).all()
    assert w[0, 21] == 1  # left of the first residue: beyond the end
    assert w[0, 22 + 0] == 1 and w[0, 44 + 1] == 1  # A at 0, C at +1
    assert w[2, 44 + 21] == 1


def test_held_out_split_depends_on_names_only():
    names = [f"P{i}" for i in range(5000)]
    split = held_out(names)
    assert abs(split.mean() - 0.2) < 0.02
    np.testing.assert_array_equal(held_out(names[::-1]), split[::-1])


def random_protein(rng, length):
    return "".join(rng.choice(list(STANDARD_AMINO_ACIDS), size=length))


def test_protein_probe_learns_an_obvious_rule():
    # label: more lysine than glutamate (plus noise-free composition features)
    rng = np.random.default_rng(0)
    seqs = [random_protein(rng, int(rng.integers(50, 200))) for _ in range(600)]
    y = np.array([s.count("K") > s.count("E") for s in seqs], dtype=int)
    x = aa_composition(seqs)
    test = held_out([f"s{i}" for i in range(len(seqs))])
    table = probe("composition", x[~test], y[~test], x[test], y[test], n_boot=100).set_index(
        "metric"
    )
    assert table.loc["accuracy", "value"] > 0.95
    assert table.loc["auroc", "ci_low"] > 0.95


def test_residue_probe_learns_a_neighbour_rule_with_protein_bootstrap():
    # label of a residue: its left neighbour is a proline (needs the window, not the residue)
    rng = np.random.default_rng(1)
    seqs = [random_protein(rng, 60) for _ in range(80)]
    labels = [np.array([0] + [s[i - 1] == "P" for i in range(1, len(s))], dtype=int) for s in seqs]
    groups = np.concatenate([np.full(len(s), n) for n, s in enumerate(seqs)])
    x = np.concatenate([onehot_windows(s, 3) for s in seqs])
    y = np.concatenate(labels)
    test = np.isin(groups, np.arange(60, 80))
    table = probe("window", x[~test], y[~test], x[test], y[test], groups[test], n_boot=100)
    got = table.set_index("metric")
    assert got.loc["balanced_accuracy", "value"] > 0.95
    assert (table["ci_low"] <= table["value"]).all() and (table["value"] <= table["ci_high"]).all()


def test_three_class_metrics_and_a_chance_probe():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 3000)
    rows = metric_rows("chance", y, rng.dirichlet([1, 1, 1], 3000), np.arange(3), n_boot=50)
    got = rows.set_index("metric")["value"]
    assert abs(got["accuracy"] - 1 / 3) < 0.04 and abs(got["auroc"] - 0.5) < 0.03
    assert abs(got["mcc"]) < 0.05


def test_probe_table_rows_each_predictor_then_the_majority_null():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] > 0.5).astype(int)  # class 0 is the commoner (about 69%)
    train, test = slice(0, 150), slice(150, 200)
    features = [("a", x[train], x[test]), ("b", x[train, 1:], x[test, 1:])]
    table = probe_table(iter(features), y[train], y[test], n_boot=20)
    assert list(dict.fromkeys(table["predictor"])) == ["a", "b", "majority_class"]
    first = probe("a", x[train], y[train], x[test], y[test], n_boot=20)
    assert table[table.predictor == "a"].reset_index(drop=True).equals(first)
    majority = table[table.predictor == "majority_class"].set_index("metric")["value"]
    assert majority["accuracy"] == np.mean(y[test] == 0) and majority["auroc"] == 0.5
