"""``protein-performer-study``: one report on the trained runs of a sweep.

    protein-performer-study sweep_dir=multirun/train/<date>/<time>

Thin: conf/study.yaml -> :class:`~protein_performer.study.options.StudyOptions` ->
:func:`~protein_performer.study.report.run_study`. :class:`StudyCallback` runs the same at the
end of a training multirun (``experiment=cpu_study``), reading the ``study:`` block of the
training config. Bad inputs end with a one-line error and exit status 2.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig

from protein_performer.cli.config import CONF_DIR, ConfigError, make, user_path
from protein_performer.cli.task import plain, run_task
from protein_performer.study.options import StudyOptions
from protein_performer.study.report import run_study

log = logging.getLogger(__name__)

PROG = "protein-performer-study"


def study_options(node: DictConfig | dict) -> StudyOptions:
    """The ``study:`` block -> :class:`StudyOptions`; split paths from the start directory."""
    values: dict[str, Any] = dict(plain(node))
    splits = {str(k): str(user_path(v)) for k, v in (values.pop("splits", None) or {}).items()}
    for name, path in splits.items():
        if not Path(path).exists():
            raise ConfigError(f"study.splits.{name}: no such file: {path}")
    for key in ("analysis_fasta", "dms_data_dir", "bio_data_dir"):
        if values.get(key):
            values[key] = str(user_path(values[key]))
    values["favor_error_features"] = tuple(values.get("favor_error_features") or ())
    if "bio_tasks" in values:
        values["bio_tasks"] = tuple(values["bio_tasks"])
    return make(StudyOptions, "study", values, splits=splits)


def study(cfg: DictConfig) -> dict[str, Any]:
    """Run the study of ``cfg.sweep_dir``; returns what study.json holds."""
    sweep = user_path(cfg.sweep_dir)
    if not sweep.is_dir():
        raise ConfigError(
            f"sweep_dir: no such directory: {sweep} (the multirun directory "
            f"of a training sweep, e.g. multirun/train/<date>/<time>)"
        )
    out = user_path(cfg.out) if cfg.get("out") else None
    result = run_study(sweep, study_options(cfg.study), out)
    print(f"wrote {(out or sweep / 'study') / 'report.md'}")
    return result


class StudyCallback(HydraCallback):
    """After a training multirun: the study report of its runs in ``<sweep dir>/study``."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        try:
            run_study(sweep, study_options(config.study))
        except Exception as err:  # the report must never hide the trained runs
            log.error(
                "study report of %s failed: %s (rerun: %s sweep_dir=%s)", sweep, err, PROG, sweep
            )
            return
        log.info("study report: %s", sweep / "study" / "report.md")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="study")
def _main(cfg: DictConfig) -> None:
    run_task(PROG, study, cfg)


def main() -> None:
    """Console entry point."""
    _main()


if __name__ == "__main__":
    main()
