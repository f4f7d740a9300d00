"""Perplexity and accuracy of a protein LM on a set of proteins, token-weighted and streamed.

Definitions (per input file):

* ``nll_per_token`` = (sum of the negative log-likelihood, in nats, of every scored token) /
  (number of scored tokens), summed over the whole file; ``perplexity`` = exp(nll_per_token).
  Never a mean of per-batch or per-protein perplexities.
* ``accuracy`` = share of scored tokens whose arg-max prediction is the true token.
* Causal (``clm``) models: exact next-token perplexity: every residue and the closing
  ``<eos>`` of each protein is scored given everything before it (``<cls>`` + residues).
* Masked (``mlm``) models: the masked-token perplexity of the Performer paper: 15% of the
  residues are selected as in training but every selected residue becomes <mask> (no 10%
  left unchanged, which would show the model its answer)
  (:func:`protein_performer.masking.mask_tokens`), from a generator seeded by
  ``(seed, masking, protein index)`` so the result does not depend on batching; only the
  selected tokens are scored. Repeated over ``n_maskings`` maskings: the reported value pools
  the tokens of all maskings, ``*_std`` is the standard deviation across maskings.
* Pseudo-perplexity (masked models, optional; as ESM reports it): every residue is masked in
  turn (one copy of the protein per residue, batched) and scored given all the others.
* Unigram baseline: the same scored tokens under the training corpus's token frequencies
  (:mod:`protein_performer.evaluation.unigram`).
* Proteins longer than the model's window are scored through overlapping windows
  (:mod:`protein_performer.runner.windows`): every token is scored exactly once, with at
  least ``window - stride`` tokens of left context (causal) or half that on each side (masked).

Proteins are scored by :mod:`protein_performer.runner.scoring` (the engine inference shares)
in chunks (``chunk_proteins``), sorted by length within a chunk and batched by a token budget
(``batch_tokens`` = batch size x padded length), and per-protein results are written to CSV
chunk by chunk, so memory does not grow with the file.

This module scores one source (:func:`evaluate_source`); a checkpoint on several files is
:mod:`~.checkpoint_eval`, the sums :mod:`~.accumulator`, the summary table :mod:`~.tables`.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from protein_performer.data.source import ProteinSource
from protein_performer.errors import InputError
from protein_performer.evaluation.accumulator import PerplexityAccumulator
from protein_performer.masking import DEFAULT_MASK_PROB
from protein_performer.objective import Objective
from protein_performer.progress import Progress
from protein_performer.runner.engine import Engine
from protein_performer.runner.pieces import (
    Piece,
    causal_pieces,
    mask_protein,
    masked_pieces,
    pseudo_pieces,
)
from protein_performer.runner.scoring import TokenSums, score_chunks
from protein_performer.runner.windows import window_and_stride

log = logging.getLogger(__name__)

PER_PROTEIN_COLUMNS = ("accession", "length", "n_tokens", "nll", "perplexity", "accuracy")
PSEUDO_COLUMNS = ("pseudo_n_tokens", "pseudo_nll", "pseudo_perplexity", "pseudo_accuracy")


@dataclass
class EvalOptions:
    """How to score a file (see the module docstring for the definitions).

    ``window``: tokens per model call, default the model's ``max_length``; ``stride``: tokens
    between window starts, default ``window // 2``; ``batch_tokens``: budget of padded tokens
    per batch; ``chunk_proteins``: proteins held at once; ``device``: ``auto`` | ``cpu`` |
    ``cuda`` | ``cuda:N``.
    """

    batch_tokens: int = 16384
    window: int | None = None
    stride: int | None = None
    n_maskings: int = 3
    mask_prob: float = DEFAULT_MASK_PROB  # as in training (the paper's 15%)
    seed: int = 0
    pseudo_perplexity: bool = False
    chunk_proteins: int = 4096
    device: str = "auto"
    progress: bool = True
    max_proteins: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_tokens", "n_maskings", "chunk_proteins"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.window is not None and self.window < 2:
            raise ValueError(f"window must be >= 2, got {self.window}")
        if self.stride is not None and self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        if self.max_proteins is not None and self.max_proteins < 1:
            raise ValueError(f"max_proteins must be >= 1 or null, got {self.max_proteins}")


# --------------------------------------------------------------------------------------------
# One file.


def _std(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _acc(nll: np.ndarray, correct: np.ndarray, count: np.ndarray) -> PerplexityAccumulator:
    return PerplexityAccumulator(float(nll.sum()), int(correct.sum()), int(count.sum()))


def evaluate_source(
    model: Engine | nn.Module,
    source: ProteinSource,
    *,
    objective: Objective | str,
    max_length: int,
    unigram_log_probs: np.ndarray,
    options: EvalOptions | None = None,
    per_protein_csv: str | Path | None = None,
    desc: str = "eval",
) -> dict[str, float | int]:
    """Score every protein of ``source``; returns the file's metrics (module docstring).

    ``model``: an :class:`~protein_performer.runner.Engine` (its device decided), or a
    :class:`~protein_performer.model.PerformerLM` (or any module
    ``model(tokens [B, L] long, mask [B, L] bool) -> logits [B, L, V]``) run on
    ``options.device``;
    ``objective``: an :class:`~protein_performer.objective.Objective` or its name (``clm``:
    causal, ``mlm``: masked); ``max_length``: the longest input
    the model accepts; ``unigram_log_probs`` [V]: the baseline's log-probabilities over the
    scored vocabulary (:func:`~protein_performer.evaluation.unigram.unigram_log_probs`).
    ``per_protein_csv``: where to stream one row per protein (columns
    :data:`PER_PROTEIN_COLUMNS`, plus :data:`PSEUDO_COLUMNS` with pseudo-perplexity).
    """
    opt = options or EvalOptions()
    obj = objective if isinstance(objective, Objective) else Objective(objective)
    causal = obj.causal
    if opt.pseudo_perplexity and causal:
        raise EvaluationInputError("pseudo_perplexity applies to masked (mlm) models only")
    window, stride = window_and_stride(max_length, opt.window, opt.stride)
    engine = model if isinstance(model, Engine) else Engine(model, opt.device)
    unigram = torch.as_tensor(unigram_log_probs, dtype=torch.float64, device=engine.device)

    n_total = len(source) if opt.max_proteins is None else min(len(source), opt.max_proteins)
    n_slots = (1 if causal else opt.n_maskings) + int(opt.pseudo_perplexity)
    pseudo_slot = n_slots - 1 if opt.pseudo_perplexity else None
    model_slots = list(range(n_slots - int(opt.pseudo_perplexity)))
    totals = TokenSums.zeros(n_slots, 1)
    lengths = np.asarray(source.lengths[:n_total], dtype=np.int64)
    n_windowed = int((lengths + 2 > window).sum())

    def pieces_of(index: int, tokens: np.ndarray) -> list[Piece]:
        if causal:
            return [(0, x, t) for x, t in causal_pieces(tokens, window, stride)]
        out: list[Piece] = []
        for m in model_slots:
            x, t = mask_protein(tokens, prob=opt.mask_prob, seed=opt.seed, masking=m, index=index)
            out += [(m, a, b) for a, b in masked_pieces(x, t, window, stride)]
        if pseudo_slot is not None:
            out += [(pseudo_slot, a, b) for a, b in pseudo_pieces(tokens, window, stride)]
        return out

    writer = handle = None
    if per_protein_csv is not None:
        Path(per_protein_csv).parent.mkdir(parents=True, exist_ok=True)
        handle = open(per_protein_csv, "w", newline="")
        writer = csv.writer(handle)
        writer.writerow(PER_PROTEIN_COLUMNS + (PSEUDO_COLUMNS if opt.pseudo_perplexity else ()))
    progress = Progress(n_total, desc, unit="protein", enabled=opt.progress, interval=30.0)
    try:
        for lo, hi, sums in score_chunks(
            engine,
            source,
            pieces_of,
            n_slots=n_slots,
            n_total=n_total,
            batch_tokens=opt.batch_tokens,
            chunk_proteins=opt.chunk_proteins,
            progress=progress,
            unigram=unigram,
        ):
            for name in ("nll", "correct", "count", "uni_nll", "uni_correct"):
                getattr(totals, name)[:, 0] += getattr(sums, name).sum(1)
            if writer is not None:
                _write_rows(writer, source, lo, hi, lengths, sums, model_slots, pseudo_slot)
                handle.flush()
    finally:
        progress.close()
        if handle is not None:
            handle.close()

    per_slot = [_acc(totals.nll[s], totals.correct[s], totals.count[s]) for s in model_slots]
    pooled = _acc(*(getattr(totals, n)[model_slots] for n in ("nll", "correct", "count")))
    pooled.n_sequences = n_total
    uni = _acc(*(getattr(totals, n)[model_slots] for n in ("uni_nll", "uni_correct", "count")))
    out: dict[str, float | int] = {
        **pooled.as_dict(),
        "unigram_perplexity": uni.perplexity,
        "unigram_accuracy": uni.accuracy,
        "unigram_nll_per_token": uni.nll_per_token,
        "objective": obj.name,
        "window": window,
        "stride": stride,
        "n_windowed_sequences": n_windowed,
        "n_residues": int(lengths.sum()),
    }
    if not causal:
        out.update(
            perplexity_std=_std([a.perplexity for a in per_slot]),
            accuracy_std=_std([a.accuracy for a in per_slot]),
            nll_per_token_std=_std([a.nll_per_token for a in per_slot]),
            n_maskings=opt.n_maskings,
            mask_prob=opt.mask_prob,
            seed=opt.seed,
        )
    if pseudo_slot is not None:
        ps = _acc(totals.nll[pseudo_slot], totals.correct[pseudo_slot], totals.count[pseudo_slot])
        out.update(
            pseudo_perplexity=ps.perplexity,
            pseudo_accuracy=ps.accuracy,
            pseudo_nll_per_token=ps.nll_per_token,
            pseudo_n_tokens=ps.n_tokens,
        )
    return out


def _write_rows(
    writer: csv._writer,
    source: ProteinSource,
    lo: int,
    hi: int,
    lengths: np.ndarray,
    sums: TokenSums,
    model_slots: list[int],
    pseudo_slot: int | None,
) -> None:
    nll = sums.nll[model_slots].sum(0)
    correct = sums.correct[model_slots].sum(0)
    count = sums.count[model_slots].sum(0)
    for r in range(hi - lo):
        row = [
            source.accession(lo + r),
            int(lengths[lo + r]),
            *_protein_cells(nll[r], correct[r], count[r]),
        ]
        if pseudo_slot is not None:
            row += _protein_cells(
                sums.nll[pseudo_slot, r], sums.correct[pseudo_slot, r], sums.count[pseudo_slot, r]
            )
        writer.writerow(row)


def _protein_cells(nll: float, correct: int, count: int) -> list:
    """n_tokens, mean NLL per scored token, perplexity, accuracy (empty when nothing scored)."""
    if count == 0:
        return [0, "", "", ""]
    mean = nll / count
    return [int(count), f"{mean:.6f}", f"{math.exp(mean):.6f}", f"{correct / count:.6f}"]


class EvaluationInputError(InputError):
    """An evaluation option that cannot be used (e.g. pseudo-perplexity of a causal model)."""
