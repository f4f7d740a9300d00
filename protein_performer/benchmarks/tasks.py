"""The benchmark task registry: ``protein-performer-benchmark 'tasks=[dms,...]'`` runs these.

A task is a :class:`~protein_performer.benchmarks.task_types.Task` in its own module (or one
of several in a module of related tasks). Adding a task is one module + one line below.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from protein_performer.benchmarks import dms, probe_tasks, structure_tasks
from protein_performer.benchmarks.task_types import Task, TaskError

TASKS: dict[str, Task] = {
    "dms": dms.TASK,
    "contacts": structure_tasks.CONTACTS,
    "ss": structure_tasks.SS,
    "location": probe_tasks.LOCATION,
    "soluble": probe_tasks.SOLUBLE,
    "disorder": probe_tasks.DISORDER,
    "sa": probe_tasks.SA,
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise TaskError(f"tasks: unknown task {name!r}; choose from {sorted(TASKS)}")
    return TASKS[name]


def task_options(task: Task, values: dict[str, Any] | None) -> Any:
    """The task's options dataclass from its config block, unknown keys named."""
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
