"""ProteinLMModule: one LightningModule for the masked (mlm) and causal (clm) objectives.

Metrics (``stage`` = train | valid | test | test_ood):

* ``<stage>/loss``: mean cross-entropy (nats) over the scored positions -- mlm: the selected
  residues only; clm: every real next token (residues, ``<eos>``/``<sep>``; see
  :func:`~protein_performer.masking.causal_targets`). ``train/loss`` is per step;
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

import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import SumMetric

from protein_performer.masking import IGNORE
from protein_performer.model.checkpoint import read_checkpoint
from protein_performer.model.config import ModelConfig
from protein_performer.model.lm import PerformerLM
from protein_performer.objective import Objective
from protein_performer.seeding import mix_seed
from protein_performer.training.optim import OptimConfig, build_optimizer, build_scheduler

_STAGE_CODES = {"train": 1, "valid": 2, "test": 3}
# The default objective (frozen, so one shared instance is safe as an argument default).
_DEFAULT_OBJECTIVE = Objective()


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

    def totals(self) -> list[float]:
        """The sums over all ranks so far (every rank must call it: an all-reduce)."""
        out = []
        for m in (self.nll, self.count, self.correct):
            with m.sync_context():
                out.append(float(m.sum_value))
        return out

    def restore(self, totals: list[float], owner: bool) -> None:
        """Start again from :meth:`totals`: held by one rank (``owner``), zero elsewhere,
        so the sum over ranks is the saved one."""
        for m, value in zip((self.nll, self.count, self.correct), totals):
            m.reset()
            if owner:
                m.update(torch.tensor(value, dtype=torch.float64, device=m.sum_value.device))

    def compute_and_reset(self) -> tuple[float, float, float]:
        nll, count, correct = (float(m.compute()) for m in (self.nll, self.count, self.correct))
        for m in (self.nll, self.count, self.correct):
            m.reset()
        return nll, count, correct


class ProteinLMModule(pl.LightningModule):
    """Train a :class:`PerformerLM` with the masked or causal LM objective.

    Typed configs only: ``model.causal`` must be ``objective.causal`` (the entry point
    decides both from the objective; a disagreement is an error, never rewritten).
    ``residue_frequencies`` ([V] train-corpus token frequencies) is only carried
    into the checkpoint, for the unigram baseline of evaluation. ``seed`` seeds the masking
    draws; None: ``torch.initial_seed()`` (the run's ``seed_everything`` seed). All
    hyper-parameters are stored as plain types, so :meth:`load_from_checkpoint` rebuilds
    the module (:meth:`from_hparams`) and :func:`protein_performer.runner.load_model`
    the model alone.
    """

    def __init__(
        self,
        model: ModelConfig,
        objective: Objective = _DEFAULT_OBJECTIVE,
        optim: OptimConfig | None = None,
        residue_frequencies: list[float] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        for name, value, cls in (
            ("model", model, ModelConfig),
            ("objective", objective, Objective),
            ("optim", optim, (OptimConfig, type(None))),
        ):
            if not isinstance(value, cls):
                raise TypeError(
                    f"ProteinLMModule({name}=...) takes a typed config, got {type(value).__name__}"
                    " (checkpoint hyper-parameters: ProteinLMModule.from_hparams)"
                )
        if model.causal != objective.causal:
            raise ValueError(
                f"model.causal ({model.causal}) disagrees with objective {objective} (causal="
                f"{objective.causal}): build the ModelConfig with causal=objective.causal"
            )
        cfg = model
        optim_cfg = optim or OptimConfig()
        if seed is None:
            seed = torch.initial_seed() & 0x7FFFFFFFFFFFFFFF
        freqs = None
        if residue_frequencies is not None:
            values = (
                residue_frequencies.tolist()
                if hasattr(residue_frequencies, "tolist")
                else residue_frequencies
            )
            freqs = [float(f) for f in values]
        self.save_hyperparameters(
            {
                "model": cfg.to_dict(),
                **objective.to_hparams(),
                "optim": optim_cfg.to_dict(),
                "residue_frequencies": freqs,
                "seed": int(seed),
            }
        )
        self.model_cfg = cfg
        self.optim_cfg = optim_cfg
        self.objective = objective
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

    # -- from a checkpoint ---------------------------------------------------------------------

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> ProteinLMModule:
        """The (untrained) module that a checkpoint's plain-typed hyper-parameters describe."""
        optim = hparams.get("optim")
        return cls(
            model=ModelConfig.from_dict(hparams["model"]),
            objective=Objective.from_hparams(hparams),
            optim=None if optim is None else OptimConfig.from_dict(optim),
            residue_frequencies=hparams.get("residue_frequencies"),
            seed=hparams.get("seed"),
        )

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path,
        map_location: str | torch.device | None = None,
        strict: bool = True,
    ) -> ProteinLMModule:
        """The module of a training checkpoint: :meth:`from_hparams`, then its weights and
        :meth:`on_load_checkpoint` (Lightning's loader would pass the plain dicts through)."""
        checkpoint = read_checkpoint(checkpoint_path)
        module = cls.from_hparams(checkpoint["hyper_parameters"])
        module.load_state_dict(checkpoint["state_dict"], strict=strict)
        module.on_load_checkpoint(checkpoint)
        return module if map_location is None else module.to(map_location)

    # -- the objective -------------------------------------------------------------------------

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.model(tokens, mask)

    def compute_loss(
        self,
        batch: dict[str, Tensor],
        generator: torch.Generator | None = None,
        corrupt: bool = True,
    ) -> dict[str, Tensor]:
        """``loss`` (mean NLL over scored tokens), ``nll`` (their sum), ``count``, ``correct``.

        ``corrupt`` (mlm): BERT's 80/10/10 rule (training); without it every selected residue
        becomes <mask> (validation/test), so no scored position shows its answer.
        """
        inputs, targets = self.objective.inputs_and_targets(
            batch["tokens"], batch["mask"], generator, corrupt
        )
        logits = self.model(inputs, batch["mask"])
        vocab = logits.shape[-1]
        # float32 loss whatever the autocast dtype (fp16 logits lose the NLL's low digits)
        nll = F.cross_entropy(
            logits.float().reshape(-1, vocab),
            targets.reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )
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
        self.log(
            "train/loss", out["loss"], on_step=True, on_epoch=False, prog_bar=True, batch_size=size
        )
        self.log(
            "train/accuracy",
            out["correct"] / out["count"].clamp(min=1),
            on_step=True,
            on_epoch=False,
            batch_size=size,
        )
        self.log(
            "train/feature_redraws",
            float(self.feature_redraws),
            on_step=True,
            on_epoch=False,
            batch_size=size,
        )
        optimizers = self.trainer.optimizers if self._trainer is not None else []
        if optimizers:
            self.log(
                "train/lr",
                optimizers[0].param_groups[0]["lr"],
                on_step=True,
                on_epoch=False,
                batch_size=size,
            )
        self._log_throughput(batch, size)
        return out["loss"]

    def _log_throughput(self, batch: dict[str, Tensor], size: int) -> None:
        # counted on device and divided there: no GPU sync until the logger reads the value
        self._tok_count = self._tok_count + batch["mask"].sum()
        elapsed = max(time.perf_counter() - self._tok_since, 1e-9)
        world = self.trainer.world_size if self._trainer is not None else 1
        self.log(
            "train/tokens_per_s",
            self._tok_count * world / elapsed,
            on_step=True,
            on_epoch=False,
            batch_size=size,
        )

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = self.trainer.log_every_n_steps if self._trainer is not None else 1
        if self.global_step % max(1, every) == 0:
            self._tok_count, self._tok_since = 0, time.perf_counter()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train", with_loss=False)

    # -- validation and test -------------------------------------------------------------------

    def validation_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
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

    def test_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
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
        self.log(
            f"{stage}/perplexity",
            math.exp(min(mean, 700.0)),
            sync_dist=False,
            prog_bar=stage == "valid",
        )
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
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    # -- checkpoint extras ---------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["feature_redraws"] = int(self.feature_redraws)
        # the epoch's train sums so far: a mid-epoch resume logs the same epoch metrics
        # (train/nll, train/perplexity, train/accuracy_epoch) as an uninterrupted run
        checkpoint["train_sums"] = self._sums("train").totals()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.feature_redraws = int(checkpoint.get("feature_redraws", 0))
        totals = checkpoint.get("train_sums")
        if totals is not None:
            owner = self._trainer is None or self.global_rank == 0
            self._sums("train").restore([float(v) for v in totals], owner)
