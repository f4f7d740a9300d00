"""Compare the runs of a sweep: a table (CSV + markdown) and validation-perplexity curves.

    summarize("multirun/train/2026-01-01/12-00-00")
    # -> comparison.csv, comparison.md, valid_perplexity.png in that directory

A run is a subdirectory with ``csv/metrics.csv`` (Lightning's CSVLogger) and/or
``metrics.json`` (written by the train entry point at the end); its label comes from
``.hydra/overrides.yaml``, keeping only the overrides that differ between runs. Runs that
failed before logging anything appear with status ``no metrics``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from protein_performer.errors import MissingInputError

METRICS_CSV = Path("csv") / "metrics.csv"
PERPLEXITY = "valid/perplexity"


def find_runs(sweep_dir: str | Path) -> list[Path]:
    """Job directories of a sweep (those with Hydra's .hydra/, a metrics CSV or metrics.json),
    in numeric order of their names when numeric."""
    sweep = Path(sweep_dir)
    runs = [
        d
        for d in sweep.iterdir()
        if d.is_dir()
        and (
            (d / ".hydra").is_dir() or (d / METRICS_CSV).is_file() or (d / "metrics.json").is_file()
        )
    ]

    def key(p: Path) -> tuple[int, Any]:
        return (0, int(p.name)) if p.name.isdigit() else (1, p.name)

    return sorted(runs, key=key)


def run_overrides(run_dir: Path) -> dict[str, str]:
    """``{key: value}`` from the job's ``.hydra/overrides.yaml`` (empty if absent)."""
    import yaml

    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    out = {}
    for item in yaml.safe_load(path.read_text()) or []:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def read_metrics(run_dir: Path) -> pd.DataFrame:
    """The run's CSVLogger metrics, one row per logged step (empty frame if none)."""
    path = run_dir / METRICS_CSV
    if not path.is_file():
        return pd.DataFrame()
    return pd.read_csv(path)


def curve(metrics: pd.DataFrame, column: str = PERPLEXITY) -> pd.DataFrame:
    """``step, value`` rows where ``column`` was logged."""
    if metrics.empty or column not in metrics or "step" not in metrics:
        return pd.DataFrame(columns=["step", column])
    return metrics[["step", column]].dropna().drop_duplicates("step", keep="last")


def _last(metrics: pd.DataFrame, column: str) -> float:
    if column not in metrics:
        return float("nan")
    values = metrics[column].dropna()
    return float(values.iloc[-1]) if len(values) else float("nan")


def summarize_run(run_dir: Path) -> dict[str, Any]:
    """One row: final and best validation metrics, test metrics, steps."""
    import json

    metrics = read_metrics(run_dir)
    row: dict[str, Any] = {"run": run_dir.name}
    final: dict[str, Any] = {}
    if (run_dir / "metrics.json").is_file():
        final = json.loads((run_dir / "metrics.json").read_text())
    if metrics.empty and not final:
        row["status"] = "no metrics"
        return row
    row["status"] = "ok"
    if "step" in metrics and metrics["step"].notna().any():
        row["steps"] = int(metrics["step"].max())
    valid_cols = sorted(c for c in metrics.columns if c.startswith("valid/"))
    for col in valid_cols:
        row[f"{col} (final)"] = _last(metrics, col)
    for col in ("valid/perplexity", "valid/loss"):
        if col in metrics and metrics[col].notna().any():
            row[f"{col} (best)"] = float(metrics[col].min())
    for key, value in final.items():
        if key.startswith("test") and value is not None:
            row[key] = float(value)
        elif key.startswith("valid/") and f"{key} (final)" not in row and value is not None:
            row[f"{key} (final)"] = float(value)
    for col in metrics.columns:
        if "tokens_per" in col or "tok_s" in col or col.endswith("tokens/s"):
            values = metrics[col].dropna()
            if len(values):
                row[col + " (median)"] = float(values.median())
    return row


def summarize(
    sweep_dir: str | Path, out_dir: str | Path | None = None, plot: bool = True
) -> pd.DataFrame:
    """Write comparison.csv, comparison.md and valid_perplexity.png; return the table."""
    sweep = Path(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep
    runs = find_runs(sweep)
    if not runs:
        raise MissingInputError(
            f"no runs found in {sweep} (expected job directories with .hydra/ or {METRICS_CSV})"
        )
    overrides = {r.name: run_overrides(r) for r in runs}
    keys = sorted({k for o in overrides.values() for k in o})
    # the overrides shared by every run say nothing about the difference between runs
    varying = [k for k in keys if len({o.get(k) for o in overrides.values()}) > 1]
    rows = []
    for run in runs:
        row = summarize_run(run)
        label = " ".join(f"{k}={overrides[run.name].get(k, '')}" for k in varying)
        row = {
            "run": row.pop("run"),
            "label": label or run.name,
            **{k: overrides[run.name].get(k) for k in varying},
            **row,
        }
        rows.append(row)
    table = pd.DataFrame(rows)
    sort_col = f"{PERPLEXITY} (final)"
    if sort_col in table:
        table = table.sort_values(sort_col, na_position="last", kind="stable")
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "comparison.csv", index=False)
    (out / "comparison.md").write_text(
        f"# Sweep {sweep.name}\n\n{table.to_markdown(index=False, floatfmt='.4g')}\n"
    )
    if plot:
        plot_curves(
            {r.name: read_metrics(r) for r in runs},
            {row["run"]: row["label"] for row in rows},
            out / "valid_perplexity.png",
        )
    return table


def plot_curves(
    metrics: dict[str, pd.DataFrame], labels: dict[str, str], path: Path, column: str = PERPLEXITY
) -> Path:
    """Validation perplexity against step, one line per run (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = 0
    for name, frame in metrics.items():
        c = curve(frame, column)
        if c.empty:
            continue
        ax.plot(c["step"], c[column], marker="o", markersize=3, label=labels.get(name, name))
        drawn += 1
    ax.set_xlabel("step")
    ax.set_ylabel(column)
    if drawn:
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"no {column} logged", ha="center", va="center", transform=ax.transAxes)
    ax.grid(True, alpha=0.3)
    ax.set_title("validation perplexity per run")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
