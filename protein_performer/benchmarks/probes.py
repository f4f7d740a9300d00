"""Linear probes: frozen features -> logistic regression, scored with bootstrap CIs.

A probe is a standardised logistic regression (scikit-learn) fitted on a fixed training
split and scored on the test split. Features are per protein (mean-pooled hidden states,
or the amino-acid composition baseline) or per residue (the hidden state of one layer, or
the one-hot window baseline). Metrics: those of
:mod:`protein_performer.benchmarks.classification` (accuracy, balanced accuracy, MCC, AUROC).
CIs resample proteins, the independent unit, also for per-residue tasks (their residues move
together).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
import pandas as pd

from protein_performer.benchmarks.classification import METRICS, Metrics
from protein_performer.benchmarks.resample import percentile_interval
from protein_performer.data import residue_features
from protein_performer.data.residue_features import composition, sequence_codes


def residue_indices(sequence: str) -> np.ndarray:
    """int [L]: 0-19 for the standard amino acids (alphabetical), 20 for anything else."""
    return sequence_codes(sequence)


def aa_composition(sequences: list[str]) -> np.ndarray:
    """float [N, 20]: each protein's fraction of each standard amino acid."""
    return composition([sequence_codes(s) for s in sequences])


def onehot_windows(sequence: str, half_width: int = 7) -> np.ndarray:
    """float32 [L, (2 w + 1) * 22]: one-hot residues at offsets -w..w around each position
    (22 symbols: 20 amino acids, other, beyond the ends)."""
    return residue_features.onehot_windows(sequence_codes(sequence), half_width)


def held_out(names: list[str], fraction: float = 0.2, salt: str = "") -> np.ndarray:
    """bool [N]: a fixed test split, ``crc32(salt + name) % 1000 < 1000 * fraction``; it
    depends on the names only (not their order, nor a random state)."""
    cut = int(round(1000 * fraction))
    return np.array([zlib.crc32((salt + n).encode()) % 1000 < cut for n in names], dtype=bool)


def fit_probe(x: np.ndarray, y: np.ndarray, C: float = 1.0, seed: int = 0, max_iter: int = 1000):
    """A standardised logistic regression fitted on ``x`` [N, F], labels ``y`` [N]."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if np.unique(y).size < 2:
        raise ValueError("a probe needs at least two classes in its training labels")
    probe = make_pipeline(
        StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    )
    return probe.fit(x, y)


def classification_metrics(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict:
    """:data:`METRICS` of class probabilities ``proba`` [N, K] (columns = ``classes``)."""
    return Metrics(y, proba, classes)()


def metric_rows(
    predictor: str,
    y: np.ndarray,
    proba: np.ndarray,
    classes: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """``predictor, metric, value, ci_low, ci_high``: each metric and its percentile
    bootstrap CI, resampling ``groups`` (proteins; default each row is its own group)."""
    metrics = Metrics(y, proba, classes)
    values = metrics()
    _, inverse = np.unique(np.arange(len(y)) if groups is None else groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1 if inverse.size else 0
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        drawn = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        boots.append(metrics(drawn[inverse.ravel()]))
    rows = []
    for m in METRICS:
        lo, hi = percentile_interval([b[m] for b in boots])
        rows.append((predictor, m, values[m], lo, hi))
    return pd.DataFrame(rows, columns=["predictor", "metric", "value", "ci_low", "ci_high"])


def probe(
    predictor: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    groups_test: np.ndarray | None = None,
    C: float = 1.0,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Fit a probe on the training rows and score it on the test rows (:func:`metric_rows`)."""
    model = fit_probe(x_train, y_train, C=C, seed=seed)
    classes = model.classes_
    return metric_rows(
        predictor, y_test, model.predict_proba(x_test), classes, groups_test, n_boot, seed
    )


def probe_table(
    features: Iterable[tuple[str, np.ndarray, np.ndarray]],
    y_train: np.ndarray,
    y_test: np.ndarray,
    groups_test: np.ndarray | None = None,
    C: float = 1.0,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One :func:`probe` per ``(predictor, x_train, x_test)`` of ``features`` (each drawn when
    its turn comes), then the ``majority_class`` null (every test row gets the training
    set's commonest label), in one table."""
    tables = [
        probe(name, x_train, y_train, x_test, y_test, groups_test, C, n_boot, seed)
        for name, x_train, x_test in features
    ]
    classes, counts = np.unique(y_train, return_counts=True)
    proba = np.zeros((len(y_test), len(classes)))
    proba[:, np.argmax(counts)] = 1.0
    tables.append(metric_rows("majority_class", y_test, proba, classes, groups_test, n_boot, seed))
    return pd.concat(tables, ignore_index=True)
