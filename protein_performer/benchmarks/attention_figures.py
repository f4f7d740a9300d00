"""The attention benchmark's figure: log-log time and peak memory vs L (matplotlib, built
without pyplot: no display or backend needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure


def plot_attention(df, path: Path) -> None:
    """Time (top) and peak memory (bottom) per kind and pass, one column per mode."""
    if "time_ms" not in df:
        return
    modes = [m for m in ("bidirectional", "causal") if m in set(df["mode"])]
    # one colour per kind (the same in every panel), solid fwd+bwd, dashed fwd
    palette = matplotlib.colormaps["tab10"].colors
    colour = {k: palette[i % len(palette)] for i, k in enumerate(sorted(set(df["kind"])))}
    fig = Figure(figsize=(6 * len(modes), 9))
    axes = fig.subplots(2, len(modes), squeeze=False)
    for j, mode in enumerate(modes):
        for (kind, pas), g in (
            df[df["mode"] == mode].dropna(subset=["time_ms"]).groupby(["kind", "pass"])
        ):
            style = dict(
                linestyle="-" if pas == "fwd+bwd" else "--",
                marker="o",
                markersize=3,
                color=colour[kind],
                label=f"{kind} {pas}",
            )
            axes[0, j].loglog(g.L, g.time_ms / 1e3, **style)
            axes[1, j].loglog(g.L, g.peak_mib.clip(lower=1e-1), **style)
        axes[0, j].set_title(f"{mode}: time")
        axes[1, j].set_title(f"{mode}: peak memory above inputs")
        axes[0, j].set_ylabel("seconds")
        axes[1, j].set_ylabel("MiB")
        for ax in axes[:, j]:
            ax.set_xlabel("sequence length L")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
