"""Hydra config -> validated typed objects for training (the only place that reads DictConfig).

    cfg = compose_train(["model=tiny", "attention=exact"], output_dir=tmp)   # tests, notebooks
    setup = build_setup(cfg)
    # setup: TrainSetup(model=ModelConfig, optim=OptimConfig, data=DataConfig, ...)

Validation errors are :class:`ConfigError` with the field, the bad value and the fix, e.g.
``model.attention.kind must be one of [...]``, ``model.attention.nb_features must be > 0, got 0``,
``data.max_length (512) must be <= model.max_length (256)``, ``data.train: no such file``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

import protein_performer
from protein_performer.errors import InputError
from protein_performer.fields import check_fields

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
DATA_PATH_FIELDS = ("train", "valid", "test", "test_ood")


class ConfigError(InputError):
    """A configuration value is invalid; the message names the field and the fix."""


def repo_root() -> Path:
    """The repository holding the package (where conf/ and data/sample/ live)."""
    return Path(protein_performer.__file__).resolve().parents[1]


def register_resolvers() -> None:
    """``${pp_root:}`` -> the repository root (conf/paths/default.yaml)."""
    OmegaConf.register_new_resolver("pp_root", lambda: str(repo_root()), replace=True)
    from protein_performer.cli.cluster import register_cluster_resolvers

    register_cluster_resolvers()


register_resolvers()


def user_path(path: str | Path) -> Path:
    """A path as the user typed it: relative to the directory the command started in."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import to_absolute_path

    if HydraConfig.initialized():
        return Path(to_absolute_path(str(path)))
    return Path(path).expanduser().resolve()


def compose_train(
    overrides: Sequence[str] = (), output_dir: str | Path | None = None, config_name: str = "train"
) -> DictConfig:
    """Compose conf/train.yaml as the CLI would, without running a job (tests, notebooks).

    Sets the Hydra runtime (output dir, cwd) so ``${paths.output_dir}`` resolves, and
    registers the config with :class:`HydraConfig` so relative paths resolve as in a run.
    """
    import os

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    out = Path(output_dir) if output_dir is not None else Path.cwd() / "outputs" / "compose"
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out.resolve())
        cfg.hydra.runtime.cwd = os.getcwd()
        cfg.hydra.job.num = 0
        cfg.hydra.job.id = "compose"
    HydraConfig.instance().set_config(cfg)
    return cfg


def _section(cfg: DictConfig, key: str) -> dict[str, Any]:
    try:
        node = cfg[key]
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)  # type: ignore
    except MissingMandatoryValue as err:
        field = f"{key}.{err.key}" if getattr(err, "key", None) else key
        hint = " e.g. 'data.train=[path/to/train.fasta.gz]'" if key == "data" else ""
        raise ConfigError(f"{field} is required (it is ??? in the config);{hint}") from None


def make(cls: type, section: str, values: dict[str, Any], **extra: Any) -> Any:
    """``cls(**values, **extra)`` with errors that name the config section and its fields
    (an :class:`InputError` the class raises itself already names them: it passes as it is)."""
    try:
        check_fields(cls, section, values, reserved=extra)
        return cls(**values, **extra)
    except InputError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(_full_name(str(err), cls, section)) from None


def _full_name(msg: str, cls: type, section: str) -> str:
    """The dataclasses name their fields ("attention.nb_features must be > 0"); spell them as
    the config does ("model.attention.nb_features"), or prefix the section."""
    if msg.startswith((f"{section}.", f"{section}:")):
        return msg
    head = msg.split(".", 1)[0]
    parent, _, last = section.rpartition(".")
    if parent and head == last:  # the section's own name, nested: attention -> model.attention
        return f"{parent}.{msg}"
    if "." in msg.split(" ", 1)[0] and head in {f.name for f in dataclasses.fields(cls)}:
        return f"{section}.{msg}"  # a nested section of cls: attention. -> model.attention.
    return f"{section}: {msg}"


@dataclass
class TrainSetup:
    """Everything the training run needs, typed and validated."""

    model: Any  # protein_performer.model.ModelConfig (causal = objective.causal)
    objective: Any  # protein_performer.objective.Objective
    optim: Any  # protein_performer.training.optim.OptimConfig
    data: Any  # protein_performer.data.config.DataConfig
    seed: int
    ckpt_path: Path | None
    budget: Any = None  # protein_performer.training.budget.BudgetConfig
    resume_step: int | None = None  # ckpt_path's global step (checked against this config)
    precision: str = (
        "32-true"  # trainer.precision with ``auto`` resolved (devices.resolve_precision)
    )


def _check_paths(data: dict[str, Any]) -> None:
    """Make data paths absolute (relative to the start directory) and check they exist."""
    from protein_performer.data.storage.locations import is_url

    for key in DATA_PATH_FIELDS:
        value = data.get(key)
        if value is None:
            continue
        single = isinstance(value, (str, Path))
        paths = [value] if single else list(value)
        resolved = []
        for p in paths:
            if is_url(p):  # a streamed shard set: opened (and checked) by the DataModule
                resolved.append(str(p))
                continue
            path = user_path(p)
            if not path.exists():
                raise ConfigError(
                    f"data.{key}: no such file or directory: {path} (relative paths are read "
                    f"from the directory the command started in; give an existing FASTA file "
                    f"or prepared store, e.g. 'data.{key}=[path/to/{key}.fasta.gz]')"
                )
            resolved.append(str(path))
        data[key] = resolved[0] if single else resolved
    for key in ("train", "valid"):
        if not data.get(key):
            raise ConfigError(
                f"data.{key} must name at least one FASTA file (plain or .gz) or prepared store, "
                f"e.g. 'data.{key}=[path/to/{key}.fasta.gz]'"
            )
    tsv = data.get("cluster_tsv")
    if tsv:
        path = user_path(tsv)
        if not path.exists():
            raise ConfigError(f"data.cluster_tsv: no such file: {path}")
        data["cluster_tsv"] = str(path)


def build_setup(cfg: DictConfig) -> TrainSetup:
    """Validate ``cfg`` and turn it into typed objects (nothing is built or loaded yet).

    Causality is decided here, once: the objective's (``clm`` causal, ``mlm`` not) becomes
    ``model.causal`` and, with ``model.max_length``, the attention's (``model.attention``,
    the attention group merged into the model section), so each config is built once.
    """
    import protein_performer.attention  # noqa: F401  (registers the attention kinds)
    from protein_performer.attention import AttentionConfig
    from protein_performer.data.config import DataConfig
    from protein_performer.model import ModelConfig
    from protein_performer.objective import Objective
    from protein_performer.training.optim import OptimConfig

    objective = make(Objective, "objective", _section(cfg, "objective"))

    if "attention" in cfg:  # e.g. +attention.nb_features=16 (the hint Hydra gives)
        raise ConfigError(
            f"attention.{next(iter(cfg.attention), '<field>')}: attention options live in the "
            f"model section: write model.attention.<field>=... (e.g. "
            f"model.attention.nb_features=128); attention=<kind> picks the kind"
        )
    model_values = _section(cfg, "model")
    attention_values = model_values.pop("attention", None) or {}
    decided = {"causal": objective.causal, "max_length": model_values.get("max_length")}
    if not isinstance(decided["max_length"], int) or decided["max_length"] <= 0:
        del decided["max_length"]  # invalid: ModelConfig names model.max_length
    for name, value in decided.items():
        # a value the user gave that disagrees is ModelConfig's error, naming both fields
        if attention_values.get(name) is None:
            attention_values[name] = value
    attention = make(AttentionConfig, "model.attention", attention_values)
    model = make(ModelConfig, "model", model_values, attention=attention, causal=objective.causal)

    data_values = _section(cfg, "data")
    if data_values.get("max_length") is not None and model.max_length is not None:
        if data_values["max_length"] > model.max_length:
            raise ConfigError(
                f"data.max_length ({data_values['max_length']}) must be <= model.max_length "
                f"({model.max_length}), the size of the positional table: lower "
                f"data.max_length or raise model.max_length"
            )
    _check_paths(data_values)
    data = make(DataConfig, "data", data_values)

    from protein_performer.training.budget import BudgetConfig, read_shared

    budget_values = _section(cfg, "budget") if cfg.get("budget") is not None else {}
    budget = make(BudgetConfig, "budget", budget_values)
    if budget.share is not None:
        budget.share = str(user_path(budget.share))
        try:  # a broken record is the user's to delete: say so before anything is built
            read_shared(budget.share)
        except ValueError as err:
            raise ConfigError(str(err)) from None

    optim_values = _section(cfg, "optim")
    if budget.minutes is not None and optim_values.get("total_steps") is not None:
        raise ConfigError(
            f"optim.total_steps ({optim_values['total_steps']}) and budget.minutes "
            f"({budget.minutes}) both set the schedule's length: drop one (with budget.minutes "
            f"the schedule ends where the budget does)"
        )
    if optim_values.get("total_steps") is None:
        max_steps = cfg.trainer.get("max_steps", -1)
        optim_values["total_steps"] = max_steps if max_steps and max_steps > 0 else None
    optim = make(OptimConfig, "optim", optim_values)

    from protein_performer.cli.cluster import AUTO, auto_checkpoint, effective_ckpt_path

    ckpt = effective_ckpt_path(cfg.get("ckpt_path"))
    ckpt_path = None
    if ckpt == AUTO:
        ckpt_path = auto_checkpoint(cfg)
    elif ckpt:
        ckpt_path = user_path(ckpt)
        if ckpt_path.is_dir():
            raise ConfigError(
                f"ckpt_path: {ckpt_path} is a folder: train resumes a run from its .ckpt; an "
                f"exported model is used by the other commands (eval, embed, score, generate, "
                f"analyze, benchmark, finetune ckpt_path={ckpt_path})"
            )
        if not ckpt_path.is_file():
            raise ConfigError(
                f"ckpt_path: no such checkpoint: {ckpt_path} (give the last.ckpt or best-*.ckpt "
                f"of an earlier run, e.g. "
                f"ckpt_path=outputs/train/<date>/<time>/checkpoints/last.ckpt,"
                f" or ckpt_path=auto for this run directory's last.ckpt when it exists)"
            )
    resume_step = None
    if ckpt_path is not None:
        from protein_performer.training.resume import ResumeError, check_resume

        try:  # before Lightning opens it: one line naming what differs, not a traceback
            resume_step = check_resume(ckpt_path, model, objective, optim.name)
        except ResumeError as err:
            raise ConfigError(str(err)) from None
    from protein_performer.devices import resolve_precision

    trainer = cfg.get("trainer") or {}
    try:
        precision = resolve_precision(
            trainer.get("precision", "32-true"), str(trainer.get("accelerator", "auto"))
        )
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return TrainSetup(
        model=model,
        objective=objective,
        optim=optim,
        data=data,
        seed=int(cfg.get("seed", 0)),
        ckpt_path=ckpt_path,
        budget=budget,
        resume_step=resume_step,
        precision=precision,
    )


def fsdp_block_policy() -> set[type]:
    """FSDP auto-wrap policy: one FSDP unit per transformer block (conf/trainer/fsdp.yaml)."""
    from protein_performer import model as model_pkg

    block = getattr(model_pkg, "Block", None)
    if block is None:
        from protein_performer.model.block import Block as block  # type: ignore
    return {block}
