"""The fine-tuning LightningModule: a PerformerLM backbone, a task head, mode head|lora|full.

- ``head``: the backbone frozen (and kept in eval mode: no dropout), the head trained;
- ``lora``: LoRA adapters (``peft``) on :data:`LORA_TARGETS`, the adapters and the head
  trained, everything else frozen; :func:`merge_lora` folds them into the weights for export;
- ``full``: everything trained.

The FAVOR+ projections stay as pre-trained (no feature redraws while fine-tuning: the head
learns on one fixed feature map, and the export reproduces it exactly).
Metrics (torchmetrics), per validation epoch: classification ``accuracy``,
``balanced_accuracy`` (mean per-class recall), ``mcc`` and ``auroc`` (one-vs-rest, macro);
regression ``spearman``, ``r2`` and ``mse``. Per-residue tasks pool every labelled residue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn

from protein_performer.finetune.heads import HeadConfig, PerformerClassifier
from protein_performer.finetune.lora import MODES, LoraSettings, add_lora, merge_lora
from protein_performer.masking import IGNORE
from protein_performer.model.checkpoint import CheckpointError, read_checkpoint
from protein_performer.model.config import ModelConfig
from protein_performer.model.lm import PerformerLM
from protein_performer.objective import Objective
from protein_performer.training.optim import OptimConfig, build_optimizer, build_scheduler


class FinetuneModule(pl.LightningModule):
    """Trains ``PerformerClassifier(backbone, head)`` on batches of ``data.collate``."""

    def __init__(
        self,
        model: ModelConfig,
        objective: Objective,
        head: HeadConfig,
        mode: str = "head",
        lora: LoraSettings | None = None,
        optim: OptimConfig | None = None,
        class_weights: list[float] | None = None,
        residue_frequencies: list[float] | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        self.mode = mode
        self.lora = lora or LoraSettings()
        self.optim_cfg = optim or OptimConfig(lr=1e-3, warmup_steps=0, schedule="constant")
        self.save_hyperparameters(
            {
                "model": model.to_dict(),
                **objective.to_hparams(),
                "head": head.to_dict(),
                "mode": mode,
                "lora": self.lora.to_dict(),
                "optim": self.optim_cfg.to_dict(),
                "class_weights": class_weights,
                # the backbone's train-corpus frequencies, for eval's unigram baseline when a
                # command reads this checkpoint's language model (runner.load_model)
                "residue_frequencies": None
                if residue_frequencies is None
                else [float(f) for f in residue_frequencies],
            }
        )
        self.objective = objective
        self.net = PerformerClassifier(PerformerLM(model), head)
        if mode == "head":
            self.net.performer.requires_grad_(False)
        elif mode == "lora":
            add_lora(self.net.performer, self.lora)
        weights = None if class_weights is None else torch.tensor(class_weights)
        self.register_buffer("class_weights", weights, persistent=False)
        self.metrics = nn.ModuleDict({s: task_metrics(head, f"{s}/") for s in ("valid", "test")})

    @property
    def head_cfg(self) -> HeadConfig:
        return self.net.head_cfg

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: str | Path, map_location: str | None = None, strict: bool = True
    ) -> FinetuneModule:
        """The module of a fine-tuning checkpoint, its LoRA adapters (if any) unmerged."""
        ckpt = read_checkpoint(checkpoint_path)
        module = module_from_hparams(ckpt["hyper_parameters"])
        module.load_state_dict(ckpt["state_dict"], strict=strict)
        return module if map_location is None else module.to(map_location)

    def load_backbone(self, performer: PerformerLM) -> None:
        """Start from pre-trained weights (before LoRA adapters change the module names)."""
        state = performer.state_dict()
        target = self.net.performer
        if self.mode == "lora":  # peft keeps the base weight at <layer>.base_layer.weight
            names = {k.replace(".base_layer", "") for k in target.state_dict()}
            missing = [k for k in state if k not in names]
            if missing:
                raise ValueError(f"backbone keys not found in the LoRA model: {missing[:5]}")
            mapped = {}
            for k in target.state_dict():
                plain = k.replace(".base_layer", "")
                if plain in state and "lora_" not in k:
                    mapped[k] = state[plain]
            target.load_state_dict(mapped, strict=False)
        else:
            target.load_state_dict(state)

    def train(self, mode: bool = True) -> FinetuneModule:
        super().train(mode)
        if self.mode == "head":  # a frozen backbone stays deterministic (no dropout)
            self.net.performer.eval()
        return self

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.net(tokens, mask)

    def _loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        if self.head_cfg.problem == "regression":
            return F.mse_loss(logits.squeeze(-1), targets.to(logits.dtype))
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            targets.reshape(-1),
            weight=self.class_weights,
            ignore_index=IGNORE,
        )

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self._loss(self(batch["tokens"], batch["mask"]), batch["targets"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["tokens"]))
        return loss

    def _eval_step(self, batch: dict[str, Tensor], stage: str) -> None:
        logits = self(batch["tokens"], batch["mask"])
        targets = batch["targets"]
        self.log(f"{stage}/loss", self._loss(logits, targets), batch_size=len(targets))
        if self.head_cfg.problem == "regression":
            preds, targets = logits.squeeze(-1).float(), targets.float()
        else:
            preds = logits.reshape(-1, logits.shape[-1]).float().softmax(-1)
            targets = targets.reshape(-1)
            keep = targets != IGNORE
            preds, targets = preds[keep], targets[keep]
        self.metrics[stage].update(preds, targets)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "valid")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _log_metrics(self, stage: str) -> None:
        values = self.metrics[stage].compute()
        self.log_dict({k: v.float() for k, v in values.items() if v.dim() == 0})
        confusion = values.get(f"{stage}/confusion")
        if confusion is not None:
            self.last_confusion = confusion.cpu()
        self.metrics[stage].reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("valid")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.net, self.optim_cfg)
        total = self.optim_cfg.total_steps or int(self.trainer.estimated_stepping_batches)
        scheduler = build_scheduler(optimizer, self.optim_cfg, total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def merged_classifier(self) -> PerformerClassifier:
        """The classifier with LoRA adapters folded in (plain modules, eval mode)."""
        if self.mode == "lora":
            merge_lora(self.net.performer)
            self.mode = "full"  # the adapters are gone: nothing left to merge
        return self.net.eval()


def task_metrics(head: HeadConfig, prefix: str = "") -> torchmetrics.MetricCollection:
    """The metrics of a task, keys ``<prefix><name>``; update with (probabilities [N, C] or
    values [N], targets [N])."""
    if head.problem == "regression":
        return torchmetrics.MetricCollection(
            {
                "spearman": torchmetrics.SpearmanCorrCoef(),
                "r2": torchmetrics.R2Score(),
                "mse": torchmetrics.MeanSquaredError(),
            },
            prefix=prefix,
        )
    c = head.num_labels
    return torchmetrics.MetricCollection(
        {
            "accuracy": torchmetrics.Accuracy("multiclass", num_classes=c, average="micro"),
            "balanced_accuracy": torchmetrics.Accuracy(
                "multiclass", num_classes=c, average="macro"
            ),
            "mcc": torchmetrics.MatthewsCorrCoef("multiclass", num_classes=c),
            "auroc": torchmetrics.AUROC("multiclass", num_classes=c),
            "confusion": torchmetrics.ConfusionMatrix("multiclass", num_classes=c),
        },
        prefix=prefix,
    )


def module_from_hparams(hp: dict[str, Any]) -> FinetuneModule:
    """The (untrained) module a fine-tuning checkpoint's hyper-parameters describe."""
    return FinetuneModule(
        model=ModelConfig.from_dict(hp["model"]),
        objective=Objective.from_hparams(hp),
        head=HeadConfig.from_dict(hp["head"]),
        mode=hp["mode"],
        lora=LoraSettings(**hp["lora"]),
        optim=OptimConfig.from_dict(hp["optim"]),
        class_weights=hp.get("class_weights"),
        residue_frequencies=hp.get("residue_frequencies"),
    )


def classifier_from_checkpoint(
    ckpt: dict[str, Any], path: str | Path
) -> tuple[PerformerClassifier, Objective]:
    """The fine-tuned classifier of a checkpoint dict (LoRA merged), eval mode."""
    module = module_from_hparams(ckpt["hyper_parameters"])
    state = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("metrics.")]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the fine-tuned model its hyper-parameters describe "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    return module.merged_classifier(), module.objective
