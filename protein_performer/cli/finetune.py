"""``protein-performer-finetune``: a task head (and LoRA adapters) on a trained model.

    protein-performer-finetune ckpt_path=run/checkpoints/last.ckpt data.train=train.csv mode=lora

Thin: validates the config into a :class:`protein_performer.finetune.run.FinetuneSetup` and
calls :func:`protein_performer.finetune.run.finetune`. Bad input: one line, exit status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from protein_performer.cli.config import CONF_DIR, ConfigError, make, user_path
from protein_performer.cli.task import require, run_task

PROG = "protein-performer-finetune"
EXAMPLE = "ckpt_path=run/checkpoints/last.ckpt data.train=train.csv"


def _path(value: Any, key: str) -> Path | None:
    if value is None:
        return None
    path = user_path(str(value))
    if not path.exists():
        raise ConfigError(
            f"{key}: no such file or directory: {path} (relative paths are read from the "
            "directory the command started in)"
        )
    return path


def build_finetune_setup(cfg: DictConfig) -> Any:
    """The typed, checked setup of ``cfg`` (nothing is read or built yet)."""
    from protein_performer.finetune.lora import MODES, LoraSettings
    from protein_performer.finetune.run import FinetuneSetup
    from protein_performer.training.optim import OptimConfig

    ckpt = _path(require(cfg, "ckpt_path", f"{PROG} {EXAMPLE}"), "ckpt_path")
    data = OmegaConf.to_container(cfg.data, resolve=True)
    benchmarks = data.pop("benchmarks", None)
    task = cfg.get("task")
    if task:
        from protein_performer.finetune.tasks import task_file

        if data.get("train") or data.get("valid"):
            raise ConfigError(
                f"task={task} brings its own data: drop data.train / data.valid, or drop task="
            )
        builtin, path = task_file(str(task), user_path(str(benchmarks or "data/benchmarks")))
        data.update(train=str(path), level=builtin.level, id_column="entry")
        data.update(problem="classification")
    if not data.get("train"):
        raise ConfigError(f"data.train (or task=) is required: {PROG} {EXAMPLE}")
    mode = str(cfg.mode)
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {list(MODES)}, got {mode!r}")
    head = OmegaConf.to_container(cfg.head, resolve=True)
    lora = make(LoraSettings, "lora", OmegaConf.to_container(cfg.lora, resolve=True))
    optim = make(OptimConfig, "optim", OmegaConf.to_container(cfg.optim, resolve=True))
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    known = {
        "sequence_column",
        "label_column",
        "id_column",
        "level",
        "problem",
        "folds",
        "valid_fraction",
        "batch_size",
        "max_length",
    }
    extra = sorted(set(data) - known - {"train", "valid", "labels", "valid_labels"})
    if extra:
        raise ConfigError(f"data: unknown field(s) {extra}")
    try:
        return FinetuneSetup(
            ckpt_path=ckpt,
            train=_path(data["train"], "data.train"),
            valid=_path(data.get("valid"), "data.valid"),
            labels=_path(data.get("labels"), "data.labels"),
            valid_labels=_path(data.get("valid_labels"), "data.valid_labels"),
            out_dir=Path(cfg.paths.output_dir),
            pooling=head["pooling"],
            hidden=int(head["hidden"]),
            head_dropout=float(head["dropout"]),
            mode=mode,
            lora=lora,
            optim=optim,
            balance_classes=bool(cfg.class_weights),
            seed=int(cfg.seed),
            trainer=trainer,
            baselines=bool(cfg.baselines),
            random_init_control=bool(cfg.get("random_init_control", False)),
            task=str(task) if task else None,
            **{k: data[k] for k in known if k in data},
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None


def run(cfg: DictConfig) -> dict:
    """Fine-tune as ``cfg`` says; returns metrics.json's content."""
    from protein_performer.finetune.heads import HeadConfig
    from protein_performer.finetune.run import finetune

    setup = build_finetune_setup(cfg)
    try:  # the head's options checked before any file is read
        HeadConfig(
            level=setup.level,
            problem=setup.problem,
            num_labels=1 if setup.problem == "regression" else 2,
            pooling=setup.pooling,
            hidden=setup.hidden,
            dropout=setup.head_dropout,
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None
    result = finetune(setup)
    model = result.get("model") or result.get("mean")
    print(f"{PROG}: {setup.out_dir / 'metrics.json'}: {model}")
    return result


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="finetune")
def _hydra_main(cfg: DictConfig) -> None:
    run_task(PROG, run, cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
