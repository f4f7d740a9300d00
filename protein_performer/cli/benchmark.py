"""``protein-performer-benchmark``: trained models on the field's tasks, one table per task.

    protein-performer-benchmark ckpt_path=run/last.ckpt 'tasks=[dms]' data_dir=data/benchmarks

Thin: conf/benchmark.yaml -> the task registry (:mod:`protein_performer.benchmarks.tasks`):
each task's options from its ``<task>:`` block, its summary written to
``<run dir>/<task>/summary.csv`` and printed. Bad inputs: one line, exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from protein_performer.cli.config import CONF_DIR, user_path
from protein_performer.cli.task import plain, require, run_task
from protein_performer.errors import MissingInputError

PROG = "protein-performer-benchmark"


def _list(value: Any) -> list:
    value = plain(value)
    return list(value) if isinstance(value, (list, tuple)) else [value]


def benchmark(cfg: DictConfig) -> dict[str, Any]:
    """Run every task of ``cfg.tasks`` on every checkpoint; returns {task: summary DataFrame}."""
    from protein_performer.benchmarks.task_types import ModelSpec, TaskInputs
    from protein_performer.benchmarks.tasks import get_task, model_labels, task_options

    require(cfg, "ckpt_path", f"{PROG} ckpt_path=last.ckpt (or a list: 'ckpt_path=[a,b]')")
    paths = [user_path(str(p)) for p in _list(cfg.ckpt_path)]
    for p in paths:
        if not p.exists():  # a .ckpt or an exported folder (runner.load_model reads both)
            raise MissingInputError(f"ckpt_path: no such checkpoint or exported folder: {p}")
    tasks = [get_task(str(name)) for name in _list(cfg.tasks)]  # unknown names fail first
    options = {
        t.name: task_options(t, plain(cfg[t.name]) if t.name in cfg else None) for t in tasks
    }
    data_dir = user_path(str(cfg.data_dir)) if cfg.get("data_dir") else None
    models = [ModelSpec(label, path) for label, path in zip(model_labels(paths), paths)]
    run_dir = Path(cfg.paths.output_dir)
    results = {}
    for task in tasks:
        out = run_dir / task.name
        out.mkdir(parents=True, exist_ok=True)
        inputs = TaskInputs(
            models, data_dir, out, str(cfg.device), int(cfg.budget), bool(cfg.progress)
        )
        summary = task.run(inputs, options[task.name])
        summary.to_csv(out / "summary.csv", index=False)
        print(f"\n{task.name}: {out / 'summary.csv'}")
        if len(summary):
            print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        results[task.name] = summary
    return results


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="benchmark")
def _hydra_main(cfg: DictConfig) -> None:
    run_task(PROG, benchmark, cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    sys.exit(main())
