"""Sweep-level comparison: several models' BLOSUM correlations (and perplexities) side by side.

Inputs are the ``blosum_comparison.json`` files
:func:`protein_performer.analysis.outputs.write_outputs` writes (one per model) and, optionally,
the ``metrics.json`` of ``protein-performer-eval`` for the same models. Output: one table (CSV +
markdown) and one figure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from protein_performer.errors import MissingInputError

COLUMNS = [
    "label",
    "pearson",
    "spearman",
    "permutation_p",
    "pearson_diag",
    "direct_pearson",
    "best_head",
    "best_head_pearson",
    "kept_heads",
    "heads",
    "n_proteins",
    "perplexity",
    "accuracy",
    "checkpoint",
]


def read_metrics(path: str | Path, file: str | None = None) -> dict[str, float | None]:
    """Perplexity and accuracy from a ``protein-performer-eval`` metrics.json.

    That file holds ``files: {label: {perplexity, accuracy, ...}}``; ``file`` picks a label
    (default: the first). A flat dict is accepted too: ``perplexity``, or the training run's
    metrics.json (``valid/perplexity``, else ``test/perplexity``).
    """
    p = Path(path)
    if not p.is_file():
        raise MissingInputError(
            f"metrics file not found: {p} (the metrics.json written by protein-performer-eval)"
        )
    data = json.loads(p.read_text())
    entry: dict[str, Any] = data
    files = data.get("files")
    if isinstance(files, dict) and files:
        if file is not None and file not in files:
            raise KeyError(f"{p}: no file {file!r}; it has {sorted(files)}")
        entry = files[file] if file is not None else next(iter(files.values()))
    for prefix in ("", "valid/", "test/"):
        if entry.get(f"{prefix}perplexity") is not None:
            return {
                "perplexity": entry[f"{prefix}perplexity"],
                "accuracy": entry.get(f"{prefix}accuracy"),
            }
    return {"perplexity": None, "accuracy": None}


def metrics_beside(checkpoint: str | Path) -> Path | None:
    """The training run's metrics.json for ``<run>/checkpoints/x.ckpt`` (or beside it), if any."""
    ckpt = Path(checkpoint)
    for d in (ckpt.parent, ckpt.parent.parent):
        if (d / "metrics.json").is_file():
            return d / "metrics.json"
    return None


def run_label(checkpoint: str | Path) -> str:
    """A short label for a checkpoint: its Hydra overrides (a sweep job's knobs) or run dir."""
    ckpt = Path(checkpoint)
    run = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    overrides = run / ".hydra" / "overrides.yaml"
    if overrides.is_file():
        try:
            import yaml

            items = yaml.safe_load(overrides.read_text()) or []
            items = [str(x) for x in items if not str(x).startswith(("hydra.", "paths."))]
            if items:
                return ",".join(items)
        except Exception:  # a label is cosmetic: fall back to the path
            pass
    return f"{run.name}/{ckpt.stem}"


def summary_row(
    comparison: dict[str, Any], label: str, metrics: dict[str, float | None] | None = None
) -> dict[str, Any]:
    """One table row from a blosum_comparison.json dict (+ optional eval metrics)."""
    ref = comparison.get("reference", "BLOSUM62")
    vig = comparison.get("overall", {}).get("vig", {}).get(ref, {})
    direct = comparison.get("overall", {}).get("direct", {}).get(ref, {})
    best = comparison.get("best_head") or {}
    heads = comparison.get("heads", {})
    row = {
        "label": label,
        "pearson": vig.get("pearson"),
        "spearman": vig.get("spearman"),
        "permutation_p": vig.get("permutation_p"),
        "pearson_diag": vig.get("pearson_diag"),
        "direct_pearson": direct.get("pearson"),
        "best_head": f"L{best['layer']}H{best['head']}" if best else None,
        "best_head_pearson": best.get("direct_pearson"),
        "kept_heads": heads.get("kept"),
        "heads": heads.get("total"),
        "n_proteins": comparison.get("n_proteins"),
        "perplexity": (metrics or {}).get("perplexity"),
        "accuracy": (metrics or {}).get("accuracy"),
        "checkpoint": comparison.get("checkpoint"),
    }
    return row


def sweep_table(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=COLUMNS)


def load_runs(
    run_dirs: Sequence[str | Path],
    labels: Sequence[str] | None = None,
    metrics: Sequence[str | Path | None] | None = None,
) -> pd.DataFrame:
    """A table from existing analysis run directories (each with blosum_comparison.json)."""
    rows = []
    for i, d in enumerate(run_dirs):
        path = Path(d)
        path = path if path.suffix == ".json" else path / "blosum_comparison.json"
        if not path.is_file():
            raise MissingInputError(
                f"no analysis found: {path} (run protein-performer-analyze "
                f"ckpt_path=... first, or give its run directory)"
            )
        comp = json.loads(path.read_text())
        label = labels[i] if labels else path.parent.name
        m = metrics[i] if metrics and metrics[i] else None
        rows.append(summary_row(comp, label, read_metrics(m) if m else None))
    return sweep_table(rows)


def write_sweep(table: pd.DataFrame, out_dir: str | Path) -> dict[str, Any]:
    """comparison.csv, comparison.md and comparison.png/.pdf in ``out_dir``."""
    from protein_performer.analysis.figures import plot_sweep, save

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "comparison.csv"
    md = out / "comparison.md"
    table.to_csv(csv, index=False)
    shown = table.drop(columns=["checkpoint"]).dropna(axis=1, how="all")
    md.write_text(shown.to_markdown(index=False, floatfmt=".3g") + "\n")
    figs = save(plot_sweep(table), out / "comparison")
    return {"comparison_csv": str(csv), "comparison_md": str(md), "comparison_figure": figs}
