"""The benchmark task registry: ``protein-performer-benchmark 'tasks=[dms,...]'`` runs these.

A task is a module exposing ``TASK = Task(name, Options, run)`` (or ``module:NAME`` for a
module holding several related tasks): ``Options`` a dataclass of
its settings (the ``<name>:`` block of conf/benchmark.yaml), ``run(inputs, options)`` scores
every model in :class:`TaskInputs` through the runner's engine (the task's per-batch
functions) and returns its summary table, which the command writes to
``<run dir>/<name>/summary.csv`` and prints. Adding a task is one module + one line below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from protein_performer.errors import InputError

# name -> module holding its TASK, or "module:NAME" (imported only when the task runs).
TASKS: dict[str, str] = {
    "dms": "protein_performer.benchmarks.dms",
    "contacts": "protein_performer.benchmarks.structure_tasks:CONTACTS",
    "ss": "protein_performer.benchmarks.structure_tasks:SS",
    "location": "protein_performer.benchmarks.probe_tasks:LOCATION",
    "soluble": "protein_performer.benchmarks.probe_tasks:SOLUBLE",
    "disorder": "protein_performer.benchmarks.probe_tasks:DISORDER",
    "sa": "protein_performer.benchmarks.probe_tasks:SA",
}


class TaskError(InputError):
    """An unknown task or a bad task option (names the option and the allowed values)."""


@dataclass(frozen=True)
class ModelSpec:
    """A checkpoint to benchmark and the label its rows carry."""

    label: str
    path: Path


@dataclass
class TaskInputs:
    """What every task gets: the models, the data folder, its output folder, the device."""

    models: list[ModelSpec]
    data_dir: Path | None
    out_dir: Path
    device: str = "auto"
    budget: int = 65536  # padded tokens per batch
    progress: bool = True


@dataclass(frozen=True)
class Task:
    name: str
    options: type
    run: Callable[[TaskInputs, Any], pd.DataFrame]


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise TaskError(f"tasks: unknown task {name!r}; choose from {sorted(TASKS)}")
    module, _, attr = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), attr or "TASK")


def task_options(task: Task, values: dict[str, Any] | None) -> Any:
    """The task's options dataclass from its config block, unknown keys named."""
    import dataclasses

    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(task.options)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TaskError(f"{task.name}.{unknown[0]}: unknown option; allowed: {sorted(known)}")
    try:
        return task.options(**values)
    except TaskError as err:
        message = str(err)
        if message.startswith(f"{task.name}.") or message.startswith(f"{task.name}:"):
            raise
        # options shared by several tasks do not know which one they belong to
        raise TaskError(f"{task.name}.{message}") from err


def model_labels(paths: list[Path]) -> list[str]:
    """Short distinct labels for checkpoints: the fewest trailing path parts (without
    ``checkpoints/`` and ``.ckpt``) that tell them apart."""
    parts = [[p for p in path.with_suffix("").parts if p != "checkpoints"] for path in paths]
    # at least the run folder and the file ("ck/last"): "last" alone says nothing
    for depth in range(2, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]
