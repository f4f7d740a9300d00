"""ProteinLMModule: one LightningModule for the masked (mlm) and causal (clm) objectives.

Metrics (``stage`` = train | valid | test | test_ood):

* ``<stage>/loss``: mean cross-entropy (nats) over the scored positions -- mlm: the selected
  residues only; clm: every real next token (residues, ``<eos>``/``<sep>``; see
  :func:`~protein_performer.training.masking.causal_targets`). ``train/loss`` is per step;
  valid/test values are token-weighted over the whole epoch.
* ``<stage>/perplexity`` = exp(sum of NLL / number of scored tokens), the sums accumulated
  with torchmetrics ``SumMetric`` over all batches and ranks and computed at epoch end --
  never a mean of batch perplexities.
* ``<stage>/accuracy``: share of scored tokens whose arg-max is the target (train: per
  step; its token-weighted epoch value is ``train/accuracy_epoch``, next to ``train/nll`` and
  ``train/perplexity`` at the end of each training epoch).
* ``train/lr``, ``train/tokens_per_s`` (real, non-pad tokens of all ranks per second,
  averaged over the last ``log_every_n_steps`` steps), ``train/feature_redraws``
  (cumulative number of layer feature redraws).

Masking is drawn from a CPU generator seeded by (seed, stage, step or batch index, rank):
validation masks are the same at every validation, so valid perplexity is comparable across
epochs; training masks depend on the step only, so a resumed run continues identically.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import SumMetric

from protein_performer.model.config import ModelConfig
from protein_performer.model.lm import PerformerLM
from protein_performer.seeding import mix_seed
from protein_performer.training.masking import IGNORE, causal_targets, mask_tokens
from protein_performer.training.optim import OptimConfig, build_optimizer, build_scheduler

OBJECTIVES = ("mlm", "clm")
_STAGE_CODES = {"train": 1, "valid": 2, "test": 3}


class _Sums(nn.Module):
    """Token-weighted sums of one stage (float64: exact counts, no drift over long epochs)."""

    def __init__(self) -> None:
        super().__init__()
        self.nll = SumMetric().set_dtype(torch.float64)
        self.count = SumMetric().set_dtype(torch.float64)
        self.correct = SumMetric().set_dtype(torch.float64)

    def update(self, nll: Tensor, count: Tensor, correct: Tensor) -> None:
        self.nll.update(nll.detach().double())
        self.count.update(count.detach().double())
        self.correct.update(correct.detach().double())

    def compute_and_reset(self) -> tuple[float, float, float]:
        nll, count, correct = (float(m.compute()) for m in (self.nll, self.count, self.correct))
        for m in (self.nll, self.count, self.correct):
            m.reset()
        return nll, count, correct


def _optim_config(optim: OptimConfig | dict | None) -> OptimConfig:
    if optim is None:
        return OptimConfig()
    if isinstance(optim, OptimConfig):
        return optim
    values = dict(optim)
    allowed = {f.name for f in dataclasses.fields(OptimConfig)}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"optim: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    if "betas" in values:
        values["betas"] = tuple(values["betas"])
    return OptimConfig(**values)


class ProteinLMModule(pl.LightningModule):
    """Train a :class:`PerformerLM` with the masked or causal LM objective.

    ``objective`` decides causality: ``clm`` makes the model (and its attention) causal,
    ``mlm`` bidirectional, whatever ``model.causal`` says (one switch, no inconsistent
    states). ``residue_frequencies`` ([V] train-corpus token frequencies) is only carried
    into the checkpoint, for the unigram baseline of evaluation. ``seed`` seeds the masking
    draws; None: ``torch.initial_seed()`` (the run's ``seed_everything`` seed). All
    hyper-parameters are stored as plain types, so ``load_from_checkpoint(path)`` rebuilds
    the module and :func:`protein_performer.model.checkpoint.load_lm` the model alone.
    """

    def __init__(
        self,
        model: ModelConfig | dict,
        objective: str = "mlm",
        optim: OptimConfig | dict | None = None,
        mask_prob: float = 0.15,
        residue_frequencies: list[float] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
        if objective == "mlm" and not 0.0 < float(mask_prob) < 1.0:
            raise ValueError(f"objective.mask_prob must be in (0, 1), got {mask_prob}")
        cfg = model if isinstance(model, ModelConfig) else ModelConfig.from_dict(dict(model))
        causal = objective == "clm"
        if cfg.causal != causal:
            cfg = dataclasses.replace(cfg, causal=causal)
        optim_cfg = _optim_config(optim)
        if seed is None:
            seed = torch.initial_seed() & 0x7FFFFFFFFFFFFFFF
        freqs = None
        if residue_frequencies is not None:
            values = residue_frequencies.tolist() if hasattr(residue_frequencies, "tolist") \
                else residue_frequencies
            freqs = [float(f) for f in values]
        self.save_hyperparameters({
            "model": cfg.to_dict(),
            "objective": objective,
            "optim": optim_cfg.to_dict(),
            "mask_prob": float(mask_prob),
            "residue_frequencies": freqs,
            "seed": int(seed),
        })
        self.model_cfg = cfg
        self.optim_cfg = optim_cfg
        self.objective = objective
        self.mask_prob = float(mask_prob)
        self.seed = int(seed)
        self.model = PerformerLM(cfg)
        # keys prefixed: ModuleDict keys may not shadow nn.Module attributes ("train")
        stages = ("train", "valid", "test", "test_ood")
        self.sums = nn.ModuleDict({f"s_{s}": _Sums() for s in stages})
        self.feature_redraws = 0
        self._micro = 0  # micro-batch index within the current optimizer step
        self._micro_step = -1
        self._tok_count: Tensor | int = 0
        self._tok_since = time.perf_counter()
        self._test_used: set[str] = set()

    # -- the objective -------------------------------------------------------------------------

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.model(tokens, mask)

    def inputs_and_targets(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None,
        corrupt: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """The model input and the targets (-100 = unscored) of a batch, for the objective.

        mlm: ``corrupt`` applies BERT's 80/10/10 rule (training); without it every selected
        residue becomes <mask> (validation/test), so no scored position shows its answer.
        """
        tokens, mask = batch["tokens"], batch["mask"]
        if self.objective == "mlm":
            return mask_tokens(tokens, mask, prob=self.mask_prob, generator=generator,
                               corrupt=corrupt)
        return tokens, causal_targets(tokens, mask)

    def compute_loss(
        self, batch: dict[str, Tensor], generator: torch.Generator | None = None,
        corrupt: bool = True,
    ) -> dict[str, Tensor]:
        """``loss`` (mean NLL over scored tokens), ``nll`` (their sum), ``count``, ``correct``."""
        inputs, targets = self.inputs_and_targets(batch, generator, corrupt)
        logits = self.model(inputs, batch["mask"])
        vocab = logits.shape[-1]
        # float32 loss whatever the autocast dtype (fp16 logits lose the NLL's low digits)
        nll = F.cross_entropy(logits.float().reshape(-1, vocab), targets.reshape(-1),
                              ignore_index=IGNORE, reduction="sum")
        scored = targets != IGNORE
        count = scored.sum()
        correct = ((logits.argmax(dim=-1) == targets) & scored).sum()
        return {"loss": nll / count.clamp(min=1), "nll": nll, "count": count, "correct": correct}

    def _sums(self, stage: str) -> _Sums:
        return self.sums[f"s_{stage}"]  # type: ignore[return-value]

    def _generator(self, *key: int) -> torch.Generator:
        rank = self.global_rank if self._trainer is not None else 0
        return torch.Generator().manual_seed(mix_seed(self.seed, *key, rank))

    # -- training ------------------------------------------------------------------------------

    def on_train_start(self) -> None:
        self._tok_count, self._tok_since = 0, time.perf_counter()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        step = self.global_step
        # micro-batch counter within one optimizer step (gradient accumulation); a resumed
        # run starts at a step boundary, so the masks it draws match an uninterrupted run
        self._micro = self._micro + 1 if step == self._micro_step else 0
        self._micro_step = step
        self.feature_redraws += self.model.redraw_features(step)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        gen = self._generator(_STAGE_CODES["train"], self.global_step, self._micro)
        out = self.compute_loss(batch, gen)
        self._sums("train").update(out["nll"], out["count"], out["correct"])
        size = batch["tokens"].shape[0]
        self.log("train/loss", out["loss"], on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=size)
        self.log("train/accuracy", out["correct"] / out["count"].clamp(min=1), on_step=True,
                 on_epoch=False, batch_size=size)
        self.log("train/feature_redraws", float(self.feature_redraws), on_step=True,
                 on_epoch=False, batch_size=size)
        optimizers = self.trainer.optimizers if self._trainer is not None else []
        if optimizers:
            self.log("train/lr", optimizers[0].param_groups[0]["lr"], on_step=True,
                     on_epoch=False, batch_size=size)
        self._log_throughput(batch, size)
        return out["loss"]

    def _log_throughput(self, batch: dict[str, Tensor], size: int) -> None:
        # counted on device and divided there: no GPU sync until the logger reads the value
        self._tok_count = self._tok_count + batch["mask"].sum()
        elapsed = max(time.perf_counter() - self._tok_since, 1e-9)
        world = self.trainer.world_size if self._trainer is not None else 1
        self.log("train/tokens_per_s", self._tok_count * world / elapsed, on_step=True,
                 on_epoch=False, batch_size=size)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = self.trainer.log_every_n_steps if self._trainer is not None else 1
        if self.global_step % max(1, every) == 0:
            self._tok_count, self._tok_since = 0, time.perf_counter()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train", with_loss=False)

    # -- validation and test -------------------------------------------------------------------

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int,
                        dataloader_idx: int = 0) -> Tensor:
        gen = self._generator(_STAGE_CODES["valid"], dataloader_idx, batch_idx)
        out = self.compute_loss(batch, gen, corrupt=False)
        self._sums("valid").update(out["nll"], out["count"], out["correct"])
        return out["loss"]

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("valid")

    def _test_name(self, dataloader_idx: int) -> str:
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        names = list(getattr(dm, "test_names", None) or ["test", "test_ood"])
        return names[dataloader_idx] if dataloader_idx < len(names) else "test_ood"

    def test_step(self, batch: dict[str, Tensor], batch_idx: int,
                  dataloader_idx: int = 0) -> Tensor:
        name = self._test_name(dataloader_idx)
        gen = self._generator(_STAGE_CODES["test"], dataloader_idx, batch_idx)
        out = self.compute_loss(batch, gen, corrupt=False)
        self._sums(name).update(out["nll"], out["count"], out["correct"])
        self._test_used.add(name)
        return out["loss"]

    def on_test_epoch_end(self) -> None:
        for name in sorted(self._test_used):
            self._log_epoch(name)
        self._test_used.clear()

    def _log_epoch(self, stage: str, with_loss: bool = True) -> None:
        """Token-weighted epoch metrics from the (rank-synchronised) sums; resets them."""
        nll, count, correct = self._sums(stage).compute_and_reset()
        if count <= 0:
            return
        mean = nll / count
        if with_loss:
            self.log(f"{stage}/loss", mean, sync_dist=False)
        else:
            self.log(f"{stage}/nll", mean, sync_dist=False)
        self.log(f"{stage}/perplexity", math.exp(min(mean, 700.0)), sync_dist=False,
                 prog_bar=stage == "valid")
        # train/accuracy is already a per-step series: the epoch value gets its own name
        name = f"{stage}/accuracy" if with_loss else f"{stage}/accuracy_epoch"
        self.log(name, correct / count, sync_dist=False)

    # -- optimiser -----------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, Any]:
        total = self.optim_cfg.total_steps
        if total is None and self._trainer is not None:
            estimate = self.trainer.estimated_stepping_batches
            total = int(estimate) if math.isfinite(estimate) else None
        optimizer = build_optimizer(self.model, self.optim_cfg)
        scheduler = build_scheduler(optimizer, self.optim_cfg, total)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    # -- checkpoint extras ---------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["feature_redraws"] = int(self.feature_redraws)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.feature_redraws = int(checkpoint.get("feature_redraws", 0))
