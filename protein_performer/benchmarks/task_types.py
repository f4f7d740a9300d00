"""What a benchmark task is made of; the task modules build on this, and
:mod:`protein_performer.benchmarks.tasks` lists them.

A task is a module exposing ``TASK = Task(name, Options, run)`` (or several ``Task`` values in
one module of related tasks): ``Options`` a dataclass of its settings (the ``<name>:`` block of
conf/benchmark.yaml), ``run(inputs, options)`` scores every model in :class:`TaskInputs`
through the runner's engine (the task's per-batch functions) and returns its summary table,
which the command writes to ``<run dir>/<name>/summary.csv`` and prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from protein_performer.errors import InputError


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
