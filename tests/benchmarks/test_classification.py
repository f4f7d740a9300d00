"""Weighted metrics equal scikit-learn's on the rows repeated by their weights."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    matthews_corrcoef,
    roc_auc_score,
)

from protein_performer.benchmarks.classification import Metrics


def reference(y, proba, classes, repeats):
    y, proba = np.repeat(y, repeats), np.repeat(proba, repeats, axis=0)
    pred = classes[np.argmax(proba, 1)]
    if len(classes) == 2:
        auroc = roc_auc_score(y == classes[1], proba[:, 1])
    else:
        auroc = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
    return {
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
        "mcc": matthews_corrcoef(y, pred),
        "auroc": auroc,
    }


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("ties", [False, True])
def test_weighted_metrics_equal_sklearn_on_repeated_rows(n_classes, ties):
    rng = np.random.default_rng(n_classes + 10 * ties)
    classes = np.array(["C", "E", "H"][:n_classes])  # scikit-learn wants them sorted
    y = classes[rng.integers(0, n_classes, 300)]
    proba = rng.dirichlet(np.ones(n_classes), 300)
    proba[:, 0] += 0.3 * (y == classes[0])  # some signal
    if ties:
        proba = np.round(proba, 1)  # many tied scores
    proba /= proba.sum(1, keepdims=True)
    repeats = rng.integers(0, 4, 300)  # a bootstrap's multiplicities, zeros included
    got = Metrics(y, proba, classes)(repeats)
    want = reference(y, proba, classes, repeats)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert Metrics(y, proba, classes)() == pytest.approx(reference(y, proba, classes, 1))


def test_auroc_is_nan_when_a_class_is_absent():
    m = Metrics(np.array([1, 1, 1]), np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]]), np.arange(2))
    assert np.isnan(m()["auroc"]) and m()["accuracy"] == pytest.approx(1 / 3)
