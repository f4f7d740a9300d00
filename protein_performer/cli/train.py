"""``protein-performer-train`` (= ``python -m protein_performer.train``): train a protein LM.

    protein-performer-train                                   # conf/train.yaml defaults
    protein-performer-train attention=exact objective=clm trainer.max_steps=500
    protein-performer-train -m attention=exact,favor_softmax,favor_relu objective=mlm,clm

Thin, like lightning-hydra-template's ``src/train.py``: :func:`train` validates the config
into typed objects (:mod:`protein_performer.cli.config`), builds the DataModule, the
LightningModule, callbacks, loggers and the Trainer, fits (resuming from ``ckpt_path``),
tests when test sets are configured, writes ``metrics.json`` to the run directory and
returns the metrics. ``main`` only wraps it with ``@hydra.main``. A bad config ends with a
one-line error and exit status 2.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig, OmegaConf

from protein_performer.cli.cluster import slurm_plugins
from protein_performer.cli.config import CONF_DIR, build_setup, register_resolvers
from protein_performer.cli.task import run_task
from protein_performer.errors import InputError
from protein_performer.evaluation.unigram import corpus_perplexity
from protein_performer.jsonsafe import finite

log = logging.getLogger("protein_performer.train")

PROG = "protein-performer-train"


def _instantiate_all(section: DictConfig | None, **extra: Any) -> list[Any]:
    """Instantiate every ``_target_`` entry of a group (callbacks, loggers); skip None. A
    target's :class:`InputError` (a bad option value) is raised as it is, not wrapped."""
    if not section:
        return []
    out = []
    for name, node in section.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            kwargs = extra.get(name, {})
            try:
                obj = hydra.utils.instantiate(node, **kwargs)
            except InstantiationException as err:  # the option's own check: its one line
                if isinstance(err.__cause__, InputError):
                    raise err.__cause__ from None
                raise
            if obj is not None:
                out.append(obj)
    return out


def _fix_hydra_for_ddp_children() -> None:
    """Make Lightning's DDP children land in this job's run directory, also in a multirun.

    Lightning relaunches ``python -m protein_performer.train <sys.argv[1:]>
    hydra.run.dir=<hydra.run.dir>`` for ranks > 0. Inside a multirun, ``sys.argv`` holds the
    whole sweep (``-m a=1,2``) and ``hydra.run.dir`` is not the job's directory: give the
    children this job's overrides and its output directory instead.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict, read_write

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return
    # hydra.mode=RUN: a config that sets MULTIRUN (hparams_search=optuna) must not sweep again
    sys.argv = [sys.argv[0], *[str(o) for o in hc.overrides.task], "hydra.mode=RUN"]
    with read_write(hc), open_dict(hc):
        hc.run.dir = hc.runtime.output_dir


def _output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (and test) the model ``cfg`` describes; returns the final metrics as floats."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
    from pytorch_lightning.utilities import rank_zero_only

    from protein_performer.data.datamodule import ProteinDataModule
    from protein_performer.training.module import ProteinLMModule

    setup = build_setup(cfg)
    out_dir = _output_dir(cfg)
    pl.seed_everything(setup.seed, workers=True)

    datamodule = ProteinDataModule(setup.data)
    frequencies = _residue_frequencies(datamodule)
    module = ProteinLMModule(
        model=setup.model,
        objective=setup.objective,
        optim=setup.optim,
        residue_frequencies=frequencies,
    )

    callbacks = _instantiate_all(cfg.get("callbacks"))
    if setup.budget is not None and setup.budget.minutes is not None:
        from protein_performer.training.budget import TimeBudget

        callbacks.append(
            TimeBudget(
                setup.budget.minutes,
                probe_steps=setup.budget.probe_steps,
                share=setup.budget.share,
                record_dir=out_dir,
            )
        )
    ckpt = str(setup.ckpt_path) if setup.ckpt_path else None
    # a resume keeps the metric history before the checkpoint's step (ResumableCSVLogger)
    resumed = setup.resume_step if cfg.get("train", True) else None  # train=false: a test only
    resume = {"ckpt_path": ckpt, "resume_step": resumed}
    loggers = _instantiate_all(cfg.get("logger"), wandb={"ckpt_path": ckpt}, csv=resume)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resolved.pop("hydra", None)  # type: ignore[union-attr]
    for logger in loggers:
        logger.log_hyperparams(resolved)
    if not loggers:  # logger=none: Lightning refuses a LearningRateMonitor without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]

    _fix_hydra_for_ddp_children()
    # under SLURM: ranks from SLURM's environment, requeue left to submitit (cli/cluster.py)
    plugins = slurm_plugins()
    if str(cfg.trainer.get("precision")) == "auto":
        log.info("trainer.precision=auto -> %s", setup.precision)
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        precision=setup.precision,
        **({"plugins": plugins} if plugins else {}),
        # the DataModule's samplers shard across ranks themselves (equal steps, no duplicates)
        use_distributed_sampler=False,
    )

    metrics: dict[str, float] = {}
    try:
        if cfg.get("train", True):
            if ckpt:
                log.info("resuming from %s (step %d)", ckpt, setup.resume_step or 0)
                _silence_resumable_warning()
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
            metrics.update(_floats(trainer.callback_metrics))

        if cfg.get("test", True) and (setup.data.test or setup.data.test_ood):
            checkpoint = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
            best = checkpoint.best_model_path if checkpoint is not None else ""
            if not cfg.get("train", True):
                best = ckpt or ""
            if best:
                log.info("testing %s", best)
            trainer.test(module, datamodule=datamodule, ckpt_path=best or None)
            metrics.update(_floats(trainer.callback_metrics))
    finally:
        _finish_wandb()

    metrics = {k: v for k, v in sorted(metrics.items())}
    if rank_zero_only.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(finite(metrics), indent=2) + "\n")
        _log_summary(metrics, frequencies)
    return metrics


def _silence_resumable_warning() -> None:
    """Lightning warns that a mid-epoch resume is unreliable unless the DataLoader itself has
    a ``state_dict``; here the DataModule's does (its sampler position is in every checkpoint
    and a changed world size is refused), so the resume is exact and the warning is wrong."""
    import warnings

    warnings.filterwarnings(
        "ignore", message=r"You're resuming from a checkpoint that ended before the epoch ended"
    )
    log.info(
        "mid-epoch resume is exact: the data position is the DataModule's state in the checkpoint"
    )


def _finish_wandb() -> None:
    """Close the wandb run, so the next job of a multirun starts its own instead of reusing it."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def _residue_frequencies(datamodule: Any) -> list[float] | None:
    """The train corpus' residue frequencies (the unigram baseline carried by checkpoints)."""
    get = getattr(datamodule, "residue_frequencies", None)
    if get is None:
        return None
    freqs = get()
    if freqs is None:
        return None
    return [float(f) for f in (freqs.tolist() if hasattr(freqs, "tolist") else freqs)]


def _log_summary(metrics: dict[str, float], frequencies: list[float] | None) -> None:
    ppl = metrics.get("valid/perplexity")
    text = ", ".join(
        f"{k} {v:.4g}"
        for k, v in metrics.items()
        if k.startswith(("valid/", "test")) and not k.endswith("_step")
    )
    if text:
        log.info("final: %s", text)
    if ppl is not None and frequencies:
        log.info(
            "valid perplexity %.3f vs unigram baseline %.3f (train residue frequencies)",
            ppl,
            corpus_perplexity(frequencies),
        )


class SweepSummaryCallback(HydraCallback):
    """After a multirun: comparison.csv, comparison.md and valid_perplexity.png in the sweep
    directory (:func:`protein_performer.training.sweep_summary.summarize`)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from protein_performer.training.sweep_summary import summarize

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            table = summarize(sweep_dir)
        except Exception as err:  # a summary must never hide the runs themselves
            log.warning("sweep summary of %s failed: %s", sweep_dir, err)
            return
        log.info("sweep summary (%d runs): %s", len(table), sweep_dir / "comparison.md")


register_resolvers()


# an absolute path: relative ones are read as a python package (pkg://) when this module is
# imported rather than run as a file, and conf/ is not a package
@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def _main(cfg: DictConfig) -> float | None:
    metrics = run_task(PROG, train, cfg)
    # the Optuna sweeper minimises the returned value
    value = metrics.get(cfg.get("optimized_metric") or "")
    return value


def main() -> None:
    """Console entry point (``protein-performer-train``)."""
    _main()


if __name__ == "__main__":
    main()
