"""Built-in fine-tuning tasks: the aaanalysis 1.1.0 benchmark sets (BSD-3-Clause), by name.

    protein-performer-data fetch-benchmarks --out data/benchmarks --only aaanalysis
    protein-performer-finetune ckpt_path=... task=location   # data.benchmarks=data/benchmarks

Each is a TSV (``entry``, ``gene``, ``sequence``, ``label``) in ``<benchmarks>/aaanalysis/``;
per-residue labels are comma lists. No fixed test split ships with them: the run splits
(``data.valid_fraction`` or ``data.folds``) with ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from protein_performer.errors import InputError

SOURCE = "aaanalysis"


@dataclass(frozen=True)
class BuiltinTask:
    """One benchmark file and what its labels are."""

    file: str
    level: str  # protein | residue
    description: str


TASKS: dict[str, BuiltinTask] = {
    "location": BuiltinTask(
        "SEQ_LOCATION.tsv", "protein", "subcellular location, 2 classes, 1,835 proteins"
    ),
    "soluble": BuiltinTask(
        "SEQ_SOLUBLE.tsv", "protein", "solubility, 2 balanced classes, 17,408 proteins"
    ),
    "disorder": BuiltinTask(
        "AA_LDR.tsv", "residue", "long disordered regions per residue, 342 proteins"
    ),
    "sa": BuiltinTask(
        "AA_SA.tsv", "residue", "solvent accessibility per residue (2 classes), 233 proteins"
    ),
}


class TaskError(InputError):
    """An unknown built-in task, or its data not fetched."""


def task_file(name: str, benchmarks: str | Path) -> tuple[BuiltinTask, Path]:
    """The task called ``name`` and its file under ``benchmarks`` (checked to exist)."""
    if name not in TASKS:
        raise TaskError(f"task must be one of {sorted(TASKS)}, got {name!r}")
    task = TASKS[name]
    path = Path(benchmarks) / SOURCE / task.file
    if not path.is_file():
        raise TaskError(
            f"task={name}: {path} not found; fetch it with protein-performer-data "
            f"fetch-benchmarks --out {benchmarks} --only {SOURCE} (or set data.benchmarks= "
            "to the folder given to --out)"
        )
    return task, path
