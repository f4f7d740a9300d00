"""Baselines on the fine-tuning split, scored with the same metrics as the model.

- per protein: amino-acid composition (20 standard residue frequencies) -> logistic
  regression (classification) or ridge regression;
- per residue: one-hot windows of ``2 * half_window + 1`` residues centred on each labelled
  residue (21 symbols: the 20 standard amino acids and "other / off the end") -> logistic
  regression.
"""

from __future__ import annotations

import numpy as np
import torch

from protein_performer.data import residue_features
from protein_performer.data.residue_features import OTHER, onehot_windows, token_codes
from protein_performer.finetune.heads import HeadConfig
from protein_performer.finetune.module import task_metrics


def composition(tokens: list[np.ndarray]) -> np.ndarray:
    """[N, 20]: each protein's standard amino-acid frequencies."""
    return residue_features.composition([token_codes(t) for t in tokens])


def residue_windows(tokens: list[np.ndarray], half_window: int) -> np.ndarray:
    """[sum of lengths, (2w + 1) * 21] one-hot windows around every residue, in order."""
    return np.concatenate(
        [onehot_windows(token_codes(t), half_window, off_end=OTHER) for t in tokens]
    )


def _score(head: HeadConfig, scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    metrics = task_metrics(head)
    metrics.update(torch.as_tensor(scores, dtype=torch.float32), torch.as_tensor(targets))
    values = metrics.compute()
    return {k: float(v) for k, v in values.items() if v.dim() == 0}


def _fit_predict(head: HeadConfig, x_train, y_train, x_valid, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if head.problem == "regression":
        model = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
        return model.fit(x_train, y_train).predict(x_valid)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(x_train, y_train)
    proba = np.zeros((len(x_valid), head.num_labels))
    proba[:, model.classes_] = model.predict_proba(x_valid)
    return proba


def run_baseline(
    head: HeadConfig,
    train_tokens: list[np.ndarray],
    train_targets: list,
    valid_tokens: list[np.ndarray],
    valid_targets: list,
    *,
    half_window: int = 7,
    max_residues: int = 200_000,
    seed: int = 0,
) -> tuple[str, dict[str, float]]:
    """(name, metrics) of the task level's baseline, trained on train and scored on valid."""
    if head.level == "protein":
        y_train = np.asarray(train_targets)
        scores = _fit_predict(
            head, composition(train_tokens), y_train, composition(valid_tokens), seed
        )
        return "composition_logreg", _score(head, scores, np.asarray(valid_targets))
    x_train = residue_windows(train_tokens, half_window)
    y_train = np.concatenate(train_targets)
    if len(y_train) > max_residues:  # keeps the fit to seconds; a random subset of residues
        keep = np.random.default_rng(seed).choice(len(y_train), max_residues, replace=False)
        x_train, y_train = x_train[keep], y_train[keep]
    scores = _fit_predict(head, x_train, y_train, residue_windows(valid_tokens, half_window), seed)
    return f"onehot_window{2 * half_window + 1}_logreg", _score(
        head, scores, np.concatenate(valid_targets)
    )
