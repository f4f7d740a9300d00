"""Figures of the attention analysis (matplotlib; no display needed).

Every ``plot_*`` function returns a :class:`matplotlib.figure.Figure` built without pyplot,
so it never opens a window nor changes the session's backend (files are rendered by Agg;
a notebook shows the returned figure with ``display(fig)``). :func:`save` writes PNG and PDF.
Matrices come in alphabetical amino-acid order and are shown grouped by physico-chemical
class (:data:`protein_performer.analysis.aggregate.AA_GROUPS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from protein_performer.analysis.aggregate import AA_GROUPS, GROUPED_ORDER, reorder
from protein_performer.analysis.substitution import pair_values, symmetrise


def save(fig: Figure, path_stem: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[str]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.pdf``; return the paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        p = stem.with_suffix(f".{fmt}")
        fig.savefig(p, dpi=150, bbox_inches="tight")
        paths.append(str(p))
    return paths


def save_closed(fig: Figure, path_stem: str | Path) -> list[str]:
    """Lay out, :func:`save` (PNG + PDF) and close ``fig`` (figures made in a loop must not
    pile up in pyplot's registry)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = save(fig, path_stem)
    plt.close(fig)
    return paths


def _group_lines(ax, n: int = 20) -> None:
    edge = -0.5
    for letters in list(AA_GROUPS.values())[:-1]:
        edge += len(letters)
        ax.axhline(edge, color="k", lw=0.8)
        ax.axvline(edge, color="k", lw=0.8)


def _heatmap(ax, m: np.ndarray, title: str, cmap: str = "RdBu_r", center: bool = True) -> None:
    """``m`` in the grouped order on ``ax``, with its title and colour bar."""
    g = reorder(m)
    # colour scale from the off-diagonal pairs (the compared ones); the diagonal saturates
    off = g[~np.eye(len(g), dtype=bool)]
    finite = off[np.isfinite(off)]
    vmax = float(np.abs(finite).max()) if finite.size else 1.0
    kw = dict(vmin=-vmax, vmax=vmax) if center else {}
    im = ax.imshow(np.ma.masked_invalid(g), cmap=cmap, **kw)
    ax.set_xticks(range(20), list(GROUPED_ORDER))
    ax.set_yticks(range(20), list(GROUPED_ORDER))
    ax.tick_params(labelsize=7)
    _group_lines(ax)
    ax.set_title(title, fontsize=10)
    ax.figure.colorbar(im, ax=ax, fraction=0.046)


def plot_heatmaps(
    matrix: np.ndarray,
    reference: np.ndarray,
    title: str = "attention",
    reference_name: str = "BLOSUM62",
    r: float | None = None,
) -> Figure:
    """Side by side: the attention-derived matrix and the reference, same grouped order."""
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    axes = fig.subplots(1, 2)
    _heatmap(axes[0], symmetrise(matrix), title)
    _heatmap(axes[1], reference, reference_name)
    if r is not None and np.isfinite(r):
        fig.suptitle(
            f"Pearson r = {r:.2f} over the 190 off-diagonal pairs "
            f"(colour scale: off-diagonal range)",
            fontsize=10,
        )
    return fig


def plot_with_control(trained, control, mode: str = "vig") -> Figure:
    """Trained model | the same model at random init (the null) | the reference, each with its
    Pearson r and permutation p; ``trained``/``control`` are AnalysisResults."""
    ref_name = trained.options["reference"]
    fig = Figure(figsize=(15, 4.8), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, result, name in ((axes[0], trained, "trained"), (axes[1], control, "random init")):
        stats = result.overall[mode][ref_name]
        matrix = result.vig if mode == "vig" else result.direct
        _heatmap(
            ax,
            symmetrise(matrix),
            f"{name}: r = {_fmt(stats['pearson'])}, "
            f"perm. p = {_fmt(stats['permutation_p'], '.2g')}",
        )
    _heatmap(axes[2], trained.references[ref_name], ref_name)
    fig.suptitle(
        f"attention ({'Vig similarity' if mode == 'vig' else 'direct'}) vs {ref_name}: "
        f"the trained model beside the same model at random initialisation",
        fontsize=10,
    )
    return fig


def plot_scatter(
    matrix: np.ndarray,
    reference: np.ndarray,
    reference_name: str = "BLOSUM62",
    ylabel: str = "attention similarity",
    stats: dict | None = None,
) -> Figure:
    """The 190 off-diagonal amino-acid pairs: reference score vs attention-derived value."""
    x = pair_values(reference)
    y = pair_values(symmetrise(matrix))
    ok = np.isfinite(y)
    fig = Figure(figsize=(4.6, 4), layout="constrained")
    ax = fig.subplots()
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, size=x.size)  # integer scores overlap
    ax.scatter(x[ok] + jitter[ok], y[ok], s=10, alpha=0.7)
    if ok.sum() >= 2 and np.ptp(x[ok]) > 0:
        slope, intercept = np.polyfit(x[ok], y[ok], 1)
        xs = np.array([x.min(), x.max()])
        ax.plot(xs, slope * xs + intercept, color="C3", lw=1)
    ax.set_xlabel(f"{reference_name} score")
    ax.set_ylabel(ylabel)
    if stats:
        r, rho, p = stats.get("pearson"), stats.get("spearman"), stats.get("permutation_p")
        ax.set_title(
            f"r = {_fmt(r)}, Spearman = {_fmt(rho)}, perm. p = {_fmt(p, '.3g')}", fontsize=9
        )
    return fig


def _fmt(v, spec: str = ".2f") -> str:
    return "n/a" if v is None or not np.isfinite(v) else format(v, spec)


def plot_layer_head_grid(
    values: np.ndarray,
    kept: np.ndarray | None = None,
    title: str = "per-head Pearson r with BLOSUM62 (direct mode)",
) -> Figure:
    """values [n_layers, n_heads]; excluded heads (``kept`` False) are hatched."""
    v = np.asarray(values, dtype=float)
    n_layers, n_heads = v.shape
    fig = Figure(figsize=(2.5 + 0.6 * n_heads, 1.5 + 0.45 * n_layers), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(np.ma.masked_invalid(v), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for layer in range(n_layers):
        for head in range(n_heads):
            excluded = kept is not None and not kept[layer, head]
            text = (
                "x"
                if excluded
                else ("" if not np.isfinite(v[layer, head]) else f"{v[layer, head]:.2f}")
            )
            ax.text(
                head,
                layer,
                text,
                ha="center",
                va="center",
                fontsize=9 if excluded else 6,
                color="0.4" if excluded else "k",
            )
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(
        title
        + (
            "\n(x: head excluded, too little attention above threshold)"
            if kept is not None and not kept.all()
            else ""
        ),
        fontsize=8,
    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def plot_attention_map(
    attention: np.ndarray,
    labels: Sequence[str],
    layer: int,
    head: int,
    title: str | None = None,
    max_ticks: int = 80,
) -> Figure:
    """The [L, L] attention of one protein (rows: queries, columns: targets)."""
    a = np.asarray(attention)
    size = min(8.0, 2.0 + 0.06 * a.shape[0])
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(a, cmap="viridis", vmin=0)
    if len(labels) <= max_ticks:
        ax.set_xticks(range(len(labels)), labels, fontsize=4, rotation=90)
        ax.set_yticks(range(len(labels)), labels, fontsize=4)
    ax.set_xlabel("target")
    ax.set_ylabel("query")
    ax.set_title(title or f"layer {layer}, head {head}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def plot_sweep(
    table, x: str = "label", r_col: str = "pearson", ppl_col: str = "perplexity"
) -> Figure:
    """Sweep comparison: BLOSUM correlation per model (bars) and, when known, perplexity."""
    import pandas as pd

    table = table.copy()
    for col in (r_col, ppl_col):
        if col in table:
            table[col] = pd.to_numeric(table[col], errors="coerce")  # None -> NaN
    has_ppl = ppl_col in table and table[ppl_col].notna().any()
    fig = Figure(figsize=(9 if has_ppl else 5, 3.6), layout="constrained")
    axes = fig.subplots(1, 2 if has_ppl else 1, squeeze=False)
    ax = axes[0, 0]
    labels = [str(v) for v in table[x]]
    ax.bar(range(len(labels)), table[r_col].astype(float), color="C0")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("Pearson r with BLOSUM62")
    ax.set_title("attention vs BLOSUM62", fontsize=10)
    if has_ppl:
        ax2 = axes[0, 1]
        ok = table[ppl_col].notna() & table[r_col].notna()
        ax2.scatter(table.loc[ok, ppl_col].astype(float), table.loc[ok, r_col].astype(float))
        for _, row in table[ok].iterrows():
            ax2.annotate(
                str(row[x]),
                (float(row[ppl_col]), float(row[r_col])),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax2.set_xlabel("perplexity")
        ax2.set_ylabel("Pearson r with BLOSUM62")
        ax2.set_title("correlation vs perplexity", fontsize=10)
    return fig


def write_figures(result, out_dir: str | Path, attention_map=None) -> dict[str, list[str]]:
    """The standard figures of one :class:`~protein_performer.analysis.summary.AnalysisResult`.

    ``attention_map``: optional ``(matrix [L, L], labels, layer, head, title)``.
    """
    out = Path(out_dir)
    ref_name = result.options["reference"]
    ref = result.references[ref_name]
    files: dict[str, list[str]] = {}
    vig_stats = result.overall["vig"][ref_name]
    files["heatmaps"] = save(
        plot_heatmaps(
            result.vig, ref, "attention (Vig similarity)", ref_name, vig_stats["pearson"]
        ),
        out / "heatmaps",
    )
    files["heatmaps_direct"] = save(
        plot_heatmaps(
            result.direct,
            ref,
            "attention (direct, log2 obs/exp)"
            if result.options.get("direct_log")
            else "attention (direct, obs/exp)",
            ref_name,
            result.overall["direct"][ref_name]["pearson"],
        ),
        out / "heatmaps_direct",
    )
    files["scatter"] = save(
        plot_scatter(result.vig, ref, ref_name, "attention similarity", vig_stats), out / "scatter"
    )
    grid = np.array([r["direct_pearson"] for r in result.per_head], dtype=float)
    grid = grid.reshape(result.n_layers, result.n_heads)
    files["layer_head_grid"] = save(
        plot_layer_head_grid(
            grid,
            result.kept.reshape(result.n_layers, result.n_heads),
            f"per-head Pearson r with {ref_name} (direct mode)",
        ),
        out / "layer_head_grid",
    )
    if attention_map is not None:
        matrix, labels, layer, head, title = attention_map
        files["attention_map"] = save(
            plot_attention_map(matrix, labels, layer, head, title), out / "attention_map"
        )
    return files
