"""The study report's "Biology" table: contacts and probes per model, each beside its null.

Runs the benchmark tasks (:mod:`protein_performer.benchmarks.tasks`: ``contacts``, ``ss``,
``location``, ``disorder`` by default) on every study run and keeps the headline numbers:
contact precision at L/5 for long-range pairs, SS accuracy, and each probe's accuracy, MCC
and AUROC, for the model, its random-init twin, the sequence-only baseline and the null.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from protein_performer.benchmarks.task_types import ModelSpec, TaskInputs
from protein_performer.benchmarks.tasks import get_task

DEFAULT_TASKS = ("contacts", "ss", "location", "disorder")
# task -> (metrics shown, baseline predictor, null predictor)
_PROBE_METRICS = ("accuracy", "mcc", "auroc")
_COLUMNS = {
    "contacts": (("P@L/5 long",), "best_single_head", "contact_density"),
    "ss": (("accuracy",), "onehot_window", "majority_class"),
    "location": (_PROBE_METRICS, "aa_composition", "majority_class"),
    "soluble": (_PROBE_METRICS, "aa_composition", "majority_class"),
    "disorder": (_PROBE_METRICS, "onehot_window", "majority_class"),
    "sa": (_PROBE_METRICS, "onehot_window", "majority_class"),
}


def run_biology(
    models: list[tuple[str, Path]],
    data_dir: Path,
    tasks: list[str],
    out: Path,
    device: str = "auto",
    seed: int = 0,
) -> dict[str, pd.DataFrame]:
    """Each task's summary on every ``(label, checkpoint)``, written to ``out/<task>/``."""
    specs = [ModelSpec(label, Path(path)) for label, path in models]
    summaries = {}
    for name in tasks:
        task = get_task(name)
        task_out = out / name
        task_out.mkdir(parents=True, exist_ok=True)
        inputs = TaskInputs(specs, Path(data_dir), task_out, device, progress=False)
        summary = task.run(inputs, task.options(seed=seed))
        summary.to_csv(task_out / "summary.csv", index=False)
        summaries[name] = summary
    return summaries


def _cell(row: pd.Series | None, value: str) -> str:
    if row is None:
        return ""
    return f"{row[value]:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def headline(summaries: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (checkpoint, task, metric): model, random_init, baseline, null cells."""
    rows = []
    for task, summary in summaries.items():
        if task not in _COLUMNS or summary.empty:
            continue
        metrics, baseline, null = _COLUMNS[task]
        if task == "contacts":
            table = summary[(summary["range"] == "long") & (summary["k"] == "L/5")]
            table = table.assign(metric="P@L/5 long")
            value = "precision"
        else:
            table, value = summary, "value"
        for (label, metric), group in table.groupby(["model", "metric"], sort=False):
            if metric not in metrics:
                continue
            by = {r["predictor"]: r for _, r in group.iterrows()}
            rows.append(
                {
                    "checkpoint": label,
                    "task": task,
                    "metric": metric,
                    "model": _cell(by.get("model"), value),
                    "random_init": _cell(by.get("random_init"), value),
                    "baseline": f"{_cell(by.get(baseline), value)} ({baseline})",
                    "null": f"{_cell(by.get(null), value)} ({null})",
                }
            )
    return pd.DataFrame(rows)


def biology_section(table: pd.DataFrame | None, figure: str | None = None) -> list[str]:
    """report.md's Biology table (and one contact-map figure)."""
    if table is None or table.empty:
        return []
    lines = [
        "## Biology: contacts and linear probes",
        "",
        "Value [95% bootstrap CI over held-out chains or test proteins]. Contacts: precision "
        "of the top L/5 long-range (|i-j| >= 24) pairs from an L1 logistic regression over "
        "every layer x head APC-corrected attention map (Rao et al.), fitted on 20 fixed "
        "chains; baseline: the best single head (chosen on the training chains); null: the "
        "contact density. Probes: logistic regression on frozen states (per protein: mean; "
        "per residue: the last layer); baselines: amino-acid composition / one-hot residue "
        "windows; null: the majority class (`biology/<task>/summary.csv`).",
        "",
        table.to_markdown(index=False),
        "",
    ]
    if figure:
        lines += [f"![contact maps]({figure})", ""]
    return lines
