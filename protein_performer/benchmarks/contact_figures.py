"""Figures of the contacts task: predicted vs true contact maps, precision per layer x head."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_contact_maps(
    items: list[tuple[str, np.ndarray, np.ndarray]], path: Path, min_sep: int = 6
) -> None:
    """One panel per ``(name, predicted [L, L], true contacts [L, L])``.

    Each panel is drawn by :func:`draw_contact_map`.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(items), figsize=(4.2 * len(items), 4.2), squeeze=False)
    for ax, (name, pred, true) in zip(axes[0], items):
        draw_contact_map(ax, pred, true, min_sep)
        ax.set_title(f"{name} (L={true.shape[0]}): top-L predicted | true")
    axes[0][0].legend(loc="lower left", fontsize=7, markerscale=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def draw_contact_map(ax, pred: np.ndarray, true: np.ndarray, min_sep: int = 6) -> None:
    """The top-L predicted pairs (``|i - j| >= min_sep``) above the diagonal, the true contacts
    below it; predicted pairs in contact are blue, the others red."""
    n = true.shape[0]
    i, j = np.triu_indices(n, k=min_sep)
    top = np.argsort(-pred[i, j], kind="stable")[:n]
    ti, tj = np.nonzero(np.tril(true, -min_sep))
    ax.scatter(tj, ti, s=3, c="0.6", marker="s", linewidths=0, label="true contact")
    hit = true[i[top], j[top]]
    ax.scatter(j[top][hit], i[top][hit], s=6, c="tab:blue", label="predicted, true")
    ax.scatter(j[top][~hit], i[top][~hit], s=6, c="tab:red", label="predicted, false")
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_aspect("equal")


def plot_head_precision(grid: np.ndarray, density: float, path: Path, title: str) -> None:
    """Heatmap of precision ``grid`` [layers, heads], with the contact density as the null."""
    import matplotlib.pyplot as plt

    layers, heads = grid.shape
    fig, ax = plt.subplots(figsize=(max(4.5, 1.0 + 0.6 * heads), 1.4 + 0.45 * layers))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=max(float(np.nanmax(grid)), density, 1e-3))
    for (li, hi), v in np.ndenumerate(grid):
        ax.text(hi, li, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(range(heads))
    ax.set_yticks(range(layers))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(f"{title}\n(contact density {density:.3f})", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
