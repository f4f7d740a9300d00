"""Figures of a study report (matplotlib, PNG + PDF): ratios with CIs, validation curves,
BLOSUM r of trained models beside their random-init controls, FAVOR+ error vs features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from protein_performer.analysis.favor_error import plot_errors
from protein_performer.analysis.figures import save_closed
from protein_performer.training.sweep_summary import curve


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_ratios(table: pd.DataFrame, stem: Path) -> list[str]:
    """Model / unigram perplexity per split with 95% CIs; the baseline at 1."""
    plt = _plt()
    splits = list(dict.fromkeys(table["split"]))
    models = list(dict.fromkeys(table["model"]))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(models) * len(splits) ** 0.5, 4))
    width = 0.8 / max(len(splits), 1)
    for j, split in enumerate(splits):
        part = table[table["split"] == split].set_index("model").reindex(models)
        x = np.arange(len(models)) + (j - (len(splits) - 1) / 2) * width
        err = np.vstack([part["ratio"] - part["ratio_lo"], part["ratio_hi"] - part["ratio"]])
        ax.bar(x, part["ratio"], width, yerr=err, capsize=3, label=split)
    ax.axhline(1.0, color="k", lw=1, ls="--", label="unigram")
    ax.set_xticks(np.arange(len(models)), models, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("perplexity / unigram perplexity")
    lo = float(np.nanmin(table["ratio_lo"])) if len(table) else 0.9
    ax.set_ylim(min(lo, 1.0) - 0.02, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("held-out perplexity relative to the unigram baseline (95% CI)", fontsize=9)
    return save_closed(fig, stem)


def plot_curves(
    metrics: dict[str, pd.DataFrame],
    table: pd.DataFrame,
    stem: Path,
    column: str = "valid/perplexity",
) -> list[str]:
    """Validation perplexity against step per model, with the unigram baseline."""

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, frame in metrics.items():
        c = curve(frame, column)
        if not c.empty:
            ax.plot(c["step"], c[column], marker="o", ms=3, label=label)
    if len(table) and "unigram" in table:
        ax.axhline(
            float(table["unigram"].iloc[0]), color="k", ls="--", lw=1, label="unigram (first split)"
        )
    ax.set_xlabel("step")
    ax.set_ylabel(column)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_closed(fig, stem)


def plot_blosum_controls(table: pd.DataFrame, stem: Path) -> list[str]:
    """Pearson r with BLOSUM62 of each trained model beside its random-init control,
    with the permutation p of each above its bar."""
    plt = _plt()
    models = list(table["model"])
    x = np.arange(len(models))
    fig, ax = plt.subplots(figsize=(1.8 + 1.4 * len(models), 4))
    for off, col, pcol, name, color in (
        (-0.2, "trained_pearson", "trained_permutation_p", "trained", "tab:blue"),
        (0.2, "control_pearson", "control_permutation_p", "random init (null)", "tab:gray"),
    ):
        values = table[col].astype(float).fillna(0.0)
        ax.bar(x + off, values, 0.4, label=name, color=color)
        for xi, v, p in zip(x + off, values, table[pcol]):
            if p is not None and p == p:
                ax.annotate(
                    f"p={p:.2g}", (xi, v), ha="center", va="bottom" if v >= 0 else "top", fontsize=7
                )
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, models, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("Pearson r with BLOSUM62 (Vig similarity)")
    ax.legend(fontsize=8)
    ax.set_title("attention vs BLOSUM62: trained vs the same model at random init", fontsize=9)
    return save_closed(fig, stem)


def plot_favor_error(table: pd.DataFrame, stem: Path, model: str) -> list[str]:

    return plot_errors(table, stem, title=f"FAVOR+ vs exact softmax on {model}'s q, k")
