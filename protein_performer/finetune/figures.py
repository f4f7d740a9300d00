"""Figures of a fine-tuning run: the confusion matrix and the per-epoch curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def confusion_figure(matrix: np.ndarray, names: Sequence[str], path: Path) -> Path:
    """Counts, rows = true class, columns = predicted class, each cell annotated."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = len(names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * n, 1.0 + 0.6 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = matrix.max() if matrix.size else 0
    for i in range(n):
        for j in range(n):
            colour = "white" if matrix[i, j] > top / 2 else "black"
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", color=colour)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def curves_figure(metrics_csv: Path, path: Path) -> Path | None:
    """Train loss (per epoch mean) and every valid/* metric against the epoch."""
    import pandas as pd

    if not metrics_csv.is_file():
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    frame = pd.read_csv(metrics_csv)
    if "epoch" not in frame:
        return None
    by_epoch = frame.groupby("epoch").mean(numeric_only=True)
    columns = [c for c in by_epoch.columns if c.startswith(("train/loss", "valid/"))]
    if not columns:
        return None
    fig, axes = plt.subplots(1, len(columns), figsize=(3.0 * len(columns), 2.8), squeeze=False)
    for ax, column in zip(axes[0], columns):
        series = by_epoch[column].dropna()
        ax.plot(series.index, series.values, marker="o")
        ax.set_title(column)
        ax.set_xlabel("epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
