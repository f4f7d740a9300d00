"""One fine-tuning run: read the labelled data, split, train per fold, score, baselines.

    result = finetune(FinetuneSetup(ckpt_path=..., train=..., out_dir=...))

Writes into ``out_dir`` (per fold ``fold<k>/``): ``checkpoints/best.ckpt`` (best validation
``selection metric``), ``csv/metrics.csv`` (per-step and per-epoch logs), ``curves.png``,
``confusion.png`` (classification) and ``metrics.json`` (the best checkpoint's validation
metrics, the baseline's on the same split, and over folds the mean and standard deviation).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protein_performer.finetune.baselines import run_baseline
from protein_performer.finetune.data import (
    LabelEncoding,
    LabelledDataset,
    class_weights,
    collate,
    read_labelled,
    splits,
)
from protein_performer.finetune.figures import confusion_figure, curves_figure
from protein_performer.finetune.heads import HeadConfig
from protein_performer.finetune.lora import LoraSettings
from protein_performer.finetune.module import FinetuneModule
from protein_performer.runner import load_model
from protein_performer.training.optim import OptimConfig


@dataclass
class FinetuneSetup:
    """Everything a fine-tuning run needs, typed (cli/finetune.py builds it from Hydra)."""

    ckpt_path: Path
    train: Path
    out_dir: Path
    valid: Path | None = None  # fixed split; None: split train (valid_fraction or folds)
    labels: Path | None = None  # labels file of a FASTA train / valid
    valid_labels: Path | None = None
    sequence_column: str = "sequence"
    label_column: str = "label"
    id_column: str = "id"
    level: str = "protein"
    problem: str = "classification"
    pooling: str = "mean"
    hidden: int = 128
    head_dropout: float = 0.1
    mode: str = "head"
    lora: LoraSettings = field(default_factory=LoraSettings)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=1e-3, warmup_steps=0, schedule="constant", weight_decay=0.01
        )
    )
    balance_classes: bool = False
    folds: int = 1
    valid_fraction: float = 0.2
    seed: int = 0
    batch_size: int = 16
    max_length: int | None = None  # None: the model's
    trainer: dict[str, Any] = field(default_factory=dict)  # pl.Trainer keyword arguments
    baselines: bool = True
    random_init_control: bool = False  # also fine-tune the same config from random weights
    task: str | None = None  # a built-in task's name (recorded)

    def __post_init__(self) -> None:
        if self.folds < 1:
            raise ValueError(f"data.folds must be >= 1, got {self.folds}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"data.valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if self.valid is not None and self.folds > 1:
            raise ValueError(
                "data.valid (a fixed split) and data.folds > 1 (k-fold) exclude each other"
            )
        if self.batch_size <= 0:
            raise ValueError(f"data.batch_size must be > 0, got {self.batch_size}")


def selection_metric(problem: str) -> str:
    """The validation metric the best checkpoint maximises."""
    return "valid/spearman" if problem == "regression" else "valid/mcc"


def _read(setup: FinetuneSetup, path: Path, labels: Path | None):
    return read_labelled(
        path,
        level=setup.level,
        labels=labels,
        sequence_column=setup.sequence_column,
        label_column=setup.label_column,
        id_column=setup.id_column,
    )


def finetune(setup: FinetuneSetup) -> dict[str, Any]:
    """Run every fold; returns (and writes) metrics.json's content."""
    # Read and check every input before the model (a bad label fails fast).
    rows = _read(setup, setup.train, setup.labels)
    valid_rows = None if setup.valid is None else _read(setup, setup.valid, setup.valid_labels)
    encoding = LabelEncoding.fit(rows, setup.problem)
    targets = encoding.encode(rows)
    valid_targets = None if valid_rows is None else encoding.encode(valid_rows)
    loaded = load_model(setup.ckpt_path)
    head = HeadConfig(
        level=setup.level,
        problem=setup.problem,
        num_labels=1 if setup.problem == "regression" else len(encoding.names),
        pooling=setup.pooling,
        hidden=setup.hidden,
        dropout=setup.head_dropout,
        label_names=encoding.names,
    )
    if valid_rows is not None:
        folds = [(rows.tokens, targets, valid_rows.tokens, valid_targets)]
    else:
        strata = targets if setup.level == "protein" and setup.problem != "regression" else None
        folds = [
            (
                [rows.tokens[i] for i in a],
                [targets[i] for i in a],
                [rows.tokens[i] for i in b],
                [targets[i] for i in b],
            )
            for a, b in splits(
                len(rows),
                folds=setup.folds,
                valid_fraction=setup.valid_fraction,
                seed=setup.seed,
                strata=strata,
            )
        ]
    setup.out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for k, fold in enumerate(folds):
        out = setup.out_dir if len(folds) == 1 else setup.out_dir / f"fold{k}"
        results.append(_run_fold(setup, loaded, head, fold, out))
    summary: dict[str, Any] = {
        "task": setup.task,
        "mode": setup.mode,
        "level": setup.level,
        "problem": setup.problem,
        "labels": encoding.names,
        "checkpoint": str(setup.ckpt_path),
        "selection": selection_metric(setup.problem),
        "folds": results,
    }
    if len(results) > 1:
        summary["mean"] = _mean_sd([r["model"] for r in results])
        if setup.baselines:
            summary["baseline_mean"] = _mean_sd([r["baseline"]["metrics"] for r in results])
        if setup.random_init_control:
            summary["random_init_mean"] = _mean_sd([r["random_init"]["metrics"] for r in results])
    else:
        summary.update(results[0])
    (setup.out_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _mean_sd(items: list[dict[str, float]]) -> dict[str, list[float]]:
    keys = sorted(set.intersection(*(set(i) for i in items)))
    return {
        k: [float(np.mean([i[k] for i in items])), float(np.std([i[k] for i in items]))]
        for k in keys
    }


def _train(setup: FinetuneSetup, module, train_loader, valid_loader, out: Path):
    """Fit ``module``; (the best checkpoint's validation scores, that module, its path,
    the training seconds)."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    best = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="best",
        monitor=selection_metric(module.head_cfg.problem),
        mode="max",
        save_top_k=1,
    )
    kwargs = {
        "max_epochs": 10,
        "accelerator": "cpu",
        "devices": 1,
        "log_every_n_steps": 1,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,  # a sanity pass would log metrics of two batches as epoch 0
        **setup.trainer,
    }
    trainer = pl.Trainer(callbacks=[best], logger=CSVLogger(out, name="csv", version=""), **kwargs)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(module, train_loader, valid_loader)
        seconds = time.perf_counter() - start
        # the best checkpoint scored apart (no logger: the curves hold the training epochs only)
        module = FinetuneModule.load_from_checkpoint(best.best_model_path)
        scorer = pl.Trainer(
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator=kwargs["accelerator"],
            devices=kwargs["devices"],
            precision=kwargs.get("precision", "32-true"),
        )
        scores = scorer.validate(module, valid_loader, verbose=False)[0]
    finite = {k: float(v) for k, v in scores.items() if math.isfinite(float(v))}
    return finite, module, best.best_model_path, seconds


def _run_fold(setup: FinetuneSetup, loaded, head: HeadConfig, fold, out: Path) -> dict[str, Any]:
    import pytorch_lightning as pl
    import torch

    train_tokens, train_targets, valid_tokens, valid_targets = fold
    max_length = setup.max_length or loaded.model_cfg.max_length
    weights = None
    if setup.balance_classes and head.problem == "classification":
        weights = class_weights(train_targets, head.num_labels).tolist()

    def loader(tokens, targets, shuffle: bool):
        return torch.utils.data.DataLoader(
            LabelledDataset(tokens, targets, max_length),
            batch_size=setup.batch_size,
            shuffle=shuffle,
            collate_fn=collate,
            generator=torch.Generator().manual_seed(setup.seed),
        )

    freqs = None if loaded.residue_frequencies is None else loaded.residue_frequencies.tolist()

    def build(pretrained: bool) -> FinetuneModule:
        pl.seed_everything(setup.seed, workers=True)
        module = FinetuneModule(
            loaded.model_cfg,
            loaded.objective,
            head,
            setup.mode,
            setup.lora,
            setup.optim,
            weights,
            residue_frequencies=freqs,
        )
        if pretrained:
            module.load_backbone(loaded.model)
        return module

    train_loader = loader(train_tokens, train_targets, True)
    valid_loader = loader(valid_tokens, valid_targets, False)
    scores, module, best_path, seconds = _train(setup, build(True), train_loader, valid_loader, out)
    result: dict[str, Any] = {
        "model": scores,
        "best_checkpoint": str(best_path),
        "train_seconds": round(seconds, 1),
        "n_train": len(train_tokens),
        "n_valid": len(valid_tokens),
        "trainable_parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }
    confusion = getattr(module, "last_confusion", None)
    if confusion is not None:
        matrix = confusion.numpy()
        result["confusion"] = matrix.tolist()
        confusion_figure(matrix, head.label_names, out / "confusion.png")
    curves_figure(out / "csv" / "metrics.csv", out / "curves.png")
    if setup.random_init_control:  # the same config and recipe from random weights
        control, _, _, control_seconds = _train(
            setup, build(False), train_loader, valid_loader, out / "random_init"
        )
        result["random_init"] = {"metrics": control, "train_seconds": round(control_seconds, 1)}
    if setup.baselines:
        start = time.perf_counter()
        if head.level == "residue":  # score the residues the model scores (its crop)
            keep = [len(t) if len(t) + 2 <= max_length else max_length - 1 for t in valid_tokens]
            valid_tokens = [t[:n] for t, n in zip(valid_tokens, keep)]
            valid_targets = [y[:n] for y, n in zip(valid_targets, keep)]
        name, values = run_baseline(
            head, train_tokens, train_targets, valid_tokens, valid_targets, seed=setup.seed
        )
        result["baseline"] = {
            "name": name,
            "metrics": {f"valid/{k}": v for k, v in values.items()},
            "seconds": round(time.perf_counter() - start, 1),
        }
    return result
