"""The trained models of a sweep: every job with a ``checkpoints/last.ckpt``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from protein_performer.errors import MissingInputError
from protein_performer.training.sweep_summary import find_runs, run_overrides


@dataclass
class StudyRun:
    """One trained model of the sweep."""

    label: str
    run_dir: Path
    checkpoint: Path


def find_study_runs(sweep_dir: str | Path) -> list[StudyRun]:
    """Every job of the sweep with a ``checkpoints/last.ckpt``, labelled by what varies."""

    runs = [r for r in find_runs(sweep_dir) if (r / "checkpoints" / "last.ckpt").is_file()]
    if not runs:
        raise MissingInputError(
            f"sweep_dir: no trained runs in {sweep_dir} (no job directory holds "
            f"checkpoints/last.ckpt): give the multirun directory of a finished training sweep"
        )
    overrides = {r: run_overrides(r) for r in runs}
    keys = sorted({k for o in overrides.values() for k in o})
    varying = [k for k in keys if len({o.get(k) for o in overrides.values()}) > 1]
    out = []
    for r in runs:
        label = " ".join(f"{k.split('.')[-1]}={overrides[r].get(k, '')}" for k in varying)
        out.append(StudyRun(label or r.name, r, r / "checkpoints" / "last.ckpt"))
    return out
