"""The engine: a model, one device decision, and one pass per packed batch of rows.

Every user of a trained model (evaluation, inference, analysis, benchmarks) hands the engine
tokenised rows (whole proteins, windows of them, masked copies) and a per-batch function;
the engine packs the rows (:func:`~protein_performer.data.batching.pack`), pads them
(:class:`~protein_performer.data.batching.BatchConverter`), runs the model once under
``torch.inference_mode`` and calls ``fn(batch, outputs)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from protein_performer.data.batching import Batch, BatchConverter, Cost, pack
from protein_performer.devices import resolve_device
from protein_performer.model.outputs import ModelOutputs
from protein_performer.progress import Progress

BatchFn = Callable[[Batch, ModelOutputs], None]


class Engine:
    """``model``: a :class:`~protein_performer.model.lm.PerformerLM` (or any module whose
    ``model(tokens [B, L], mask [B, L]) -> logits [B, L, V]``, logits only); ``device``:
    ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | a torch device, decided here once. The model
    is moved there once and put in eval mode."""

    def __init__(self, model: nn.Module, device: str | torch.device = "auto") -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.convert = BatchConverter()

    def outputs(
        self,
        batch: Batch,
        *,
        logits: bool = True,
        hidden_layers: Sequence[int] = (),
        attention_layers: Sequence[int] = (),
        any_length: bool = False,
    ) -> ModelOutputs:
        """One pass over a batch already on :attr:`device` (no gradients)."""
        with torch.inference_mode():
            if hasattr(self.model, "run"):
                return self.model.run(
                    batch.tokens,
                    batch.mask,
                    logits=logits,
                    hidden_layers=hidden_layers,
                    attention_layers=attention_layers,
                    any_length=any_length,
                )
            if hidden_layers or attention_layers:
                raise TypeError(f"{type(self.model).__name__} has no run(): logits only")
            return ModelOutputs(logits=self.model(batch.tokens, batch.mask))

    def run(
        self,
        rows: Sequence[np.ndarray],
        fn: BatchFn,
        *,
        budget: int = 16384,
        cost: Cost = "linear",
        longest_first: bool = True,
        logits: bool = True,
        hidden_layers: Sequence[int] = (),
        attention_layers: Sequence[int] = (),
        any_length: bool = False,
        progress: Progress | None = None,
    ) -> None:
        """Pack ``rows`` (token ids, each ``[L_i]``) by ``budget``/``cost``, run each batch and
        call ``fn(batch, outputs)`` (both under ``torch.inference_mode``); ``batch.index``
        holds the rows' positions in ``rows``. ``progress`` (if given) advances by the rows
        of each batch. ``longest_first=False``: shortest rows first (see
        :func:`~protein_performer.data.batching.pack`)."""
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        wanted = dict(
            logits=logits,
            hidden_layers=hidden_layers,
            attention_layers=attention_layers,
            any_length=any_length,
        )
        with torch.inference_mode():
            self._run(rows, lengths, fn, budget, cost, longest_first, progress, wanted)

    def _run(
        self,
        rows: Sequence[np.ndarray],
        lengths: np.ndarray,
        fn: BatchFn,
        budget: int,
        cost: Cost,
        longest_first: bool,
        progress: Progress | None,
        wanted: dict,
    ) -> None:
        for idx in pack(lengths, budget, cost, longest_first=longest_first):
            batch = self.convert([rows[i] for i in idx], torch.from_numpy(idx)).to(self.device)
            fn(batch, self.outputs(batch, **wanted))
            if progress is not None:
                progress.update(len(idx))
