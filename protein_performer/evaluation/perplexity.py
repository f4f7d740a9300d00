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

Proteins are processed in chunks (``chunk_proteins``), sorted by length within a chunk and
batched by a token budget (``batch_tokens`` = batch size x padded length), and per-protein
results are written to CSV chunk by chunk, so memory does not grow with the file.

This module scores one source (:func:`evaluate_source`); a checkpoint on several files is
:mod:`~.checkpoint_eval`, the sums :mod:`~.accumulator`, the summary table :mod:`~.tables`.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.source import ProteinSource
from protein_performer.devices import resolve_device
from protein_performer.errors import InputError
from protein_performer.evaluation.accumulator import PerplexityAccumulator
from protein_performer.masking import DEFAULT_MASK_PROB, IGNORE, mask_tokens
from protein_performer.objective import Objective
from protein_performer.progress import Progress
from protein_performer.runner.windows import (
    centered_windows,
    sliding_windows,
    window_and_stride,
)
from protein_performer.seeding import mix_seed

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
# Pieces: the (window of a) protein rows one model call scores.


@dataclass
class _Pieces:
    """Model inputs of one chunk; each row scores into (slot, protein row)."""

    rows: list[int] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    inputs: list[np.ndarray] = field(default_factory=list)  # int [Lw] token ids
    targets: list[np.ndarray] = field(default_factory=list)  # int [Lw], IGNORE = unscored
    weights: list[float] = field(default_factory=list)  # share of its protein (progress)
    n_tokens: int = 0

    def add(self, row: int, slot: int, inputs: np.ndarray, targets: np.ndarray, w: float) -> None:
        self.rows.append(row)
        self.slots.append(slot)
        self.inputs.append(inputs)
        self.targets.append(targets)
        self.weights.append(w)
        self.n_tokens += len(inputs)

    def __len__(self) -> int:
        return len(self.rows)


def causal_pieces(
    tokens: np.ndarray, window: int, stride: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(inputs, targets) per causal window: targets[t] = tokens[start + t + 1] if scored.

    The logits at position t predict the next token; each target in the window's scored span
    appears exactly once over all windows; ``<cls>`` (position 0) is never a target.
    """
    out = []
    for start, end, score_from in sliding_windows(len(tokens), window, stride):
        inputs = tokens[start:end]
        targets = np.full(end - start, IGNORE, dtype=np.int64)
        lo = max(score_from - start - 1, 0)  # first logit whose target is >= score_from
        targets[lo : end - start - 1] = tokens[start + lo + 1 : end]
        out.append((inputs, targets))
    return out


def masked_pieces(
    inputs: np.ndarray, targets: np.ndarray, window: int, stride: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(inputs, targets) per centered window of an already masked protein."""
    out = []
    for start, end, lo, hi in centered_windows(len(inputs), window, stride):
        t = np.full(end - start, IGNORE, dtype=np.int64)
        t[lo - start : hi - start] = targets[lo:hi]
        out.append((inputs[start:end], t))
    return out


def pseudo_pieces(
    tokens: np.ndarray, window: int, stride: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (inputs, targets) per residue: that residue masked and scored, the rest intact."""
    out = []
    is_residue = tokens >= ALPHABET.first_residue_idx
    for start, end, lo, hi in centered_windows(len(tokens), window, stride):
        positions = np.flatnonzero(is_residue[lo:hi]) + lo
        if positions.size == 0:
            continue
        k = np.arange(positions.size)
        block = np.tile(tokens[start:end], (positions.size, 1))  # [k, Lw]
        block[k, positions - start] = ALPHABET.mask_idx
        tgt = np.full(block.shape, IGNORE, dtype=np.int64)
        tgt[k, positions - start] = tokens[positions]
        out.extend(zip(block, tgt))
    return out


def mask_protein(
    tokens: np.ndarray, *, prob: float, seed: int, masking: int, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mask one protein reproducibly, every selected residue as <mask>: (inputs, targets) int64."""
    gen = torch.Generator().manual_seed(mix_seed(seed, masking, index))
    t = torch.from_numpy(tokens).unsqueeze(0)
    inputs, targets = mask_tokens(
        t, torch.ones_like(t, dtype=torch.bool), prob=prob, generator=gen, corrupt=False
    )
    return inputs[0].numpy().astype(np.int64), targets[0].numpy().astype(np.int64)


# --------------------------------------------------------------------------------------------
# Batched scoring of pieces.


@dataclass
class TokenSums:
    """Per (slot, protein row) sums of one chunk, for the model and the unigram baseline.

    Each array is ``[n_slots, n_rows]``: ``nll`` (nats), ``correct`` (arg-max hits) and
    ``count`` (scored tokens) of the model, ``uni_*`` of the unigram baseline (zero without one).
    """

    nll: np.ndarray
    correct: np.ndarray
    count: np.ndarray
    uni_nll: np.ndarray
    uni_correct: np.ndarray

    @classmethod
    def zeros(cls, n_slots: int, n_rows: int) -> "TokenSums":
        f = lambda dt: np.zeros((n_slots, n_rows), dtype=dt)  # noqa: E731
        return cls(f(np.float64), f(np.int64), f(np.int64), f(np.float64), f(np.int64))


def _batches(lengths: np.ndarray, batch_tokens: int) -> Iterator[np.ndarray]:
    """Indices of pieces per batch: longest first, B * L_max <= batch_tokens (>= 1 piece)."""
    order = np.argsort(-lengths, kind="stable")
    i = 0
    while i < len(order):
        longest = int(lengths[order[i]])
        size = max(1, batch_tokens // max(longest, 1))
        yield order[i : i + size]
        i += size


@torch.inference_mode()
def _score_pieces(
    model: Callable[[Tensor, Tensor], Tensor],
    pieces: _Pieces,
    sums: TokenSums,
    *,
    unigram: Tensor | None,
    batch_tokens: int,
    device: torch.device,
    on_batch: Callable[[float], None],
) -> None:
    """Run the model over all pieces and add their token sums into ``sums``."""
    lengths = np.fromiter((len(x) for x in pieces.inputs), dtype=np.int64, count=len(pieces))
    uni_best = int(torch.argmax(unigram)) if unigram is not None else -1
    rows_all = np.asarray(pieces.rows)
    slots_all = np.asarray(pieces.slots)
    for idx in _batches(lengths, batch_tokens):
        width = int(lengths[idx].max())
        tok = np.full((len(idx), width), ALPHABET.pad_idx, dtype=np.int64)
        tgt = np.full((len(idx), width), IGNORE, dtype=np.int64)
        for b, j in enumerate(idx):
            tok[b, : lengths[j]] = pieces.inputs[j]
            tgt[b, : lengths[j]] = pieces.targets[j]
        tokens = torch.from_numpy(tok).to(device, non_blocking=True)
        targets = torch.from_numpy(tgt).to(device, non_blocking=True)
        mask = (
            torch.arange(width, device=device)[None, :]
            < torch.from_numpy(lengths[idx]).to(device)[:, None]
        )
        logits = model(tokens, mask)  # [B, L, V]
        # float32 at least (bf16/fp16 logits), float64 kept for float64 models
        logp = torch.log_softmax(
            logits, dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32)
        )
        valid = targets != IGNORE
        safe = targets.clamp_min(0)
        nll = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1).double()  # [B, L]
        nll = torch.where(valid, nll, torch.zeros_like(nll))
        correct = (logp.argmax(-1) == targets) & valid
        uni_lp = unigram[safe] if unigram is not None else torch.zeros_like(nll)
        uni_nll = torch.where(valid, -uni_lp, torch.zeros_like(nll))
        uni_correct = (targets == uni_best) & valid
        per = (
            torch.stack(
                [
                    nll.sum(1),
                    correct.sum(1).double(),
                    valid.sum(1).double(),
                    uni_nll.sum(1),
                    uni_correct.sum(1).double(),
                ]
            )
            .cpu()
            .numpy()
        )  # [5, B]
        if not np.isfinite(per[0]).all():
            raise FloatingPointError("the model produced non-finite log-probabilities")
        r, s = rows_all[idx], slots_all[idx]
        np.add.at(sums.nll, (s, r), per[0])
        np.add.at(sums.correct, (s, r), per[1].round().astype(np.int64))
        np.add.at(sums.count, (s, r), per[2].round().astype(np.int64))
        np.add.at(sums.uni_nll, (s, r), per[3])
        np.add.at(sums.uni_correct, (s, r), per[4].round().astype(np.int64))
        on_batch(float(sum(pieces.weights[j] for j in idx)))


Piece = tuple[int, np.ndarray, np.ndarray]  # (slot, inputs [Lw], targets [Lw]) of one model row


def score_chunks(
    model: nn.Module | Callable[[Tensor, Tensor], Tensor],
    source: ProteinSource,
    pieces_of: Callable[[int, np.ndarray], list[Piece]],
    *,
    n_slots: int,
    n_total: int,
    batch_tokens: int,
    chunk_proteins: int,
    device: torch.device,
    progress: Progress,
    unigram: Tensor | None = None,
) -> Iterator[tuple[int, int, TokenSums]]:
    """Per-protein token sums of the first ``n_total`` proteins, a chunk at a time.

    ``pieces_of(index, tokens)`` lists the model rows of protein ``index`` (``tokens``: its
    ids wrapped in ``<cls>``/``<eos>``) as :data:`Piece` s: ``(slot, inputs, targets)``
    (targets :data:`IGNORE` where unscored, e.g. from :func:`causal_pieces` or
    :func:`pseudo_pieces`). Rows of many proteins are batched by the ``batch_tokens`` budget;
    yields ``(lo, hi, sums)`` with ``sums`` ``[n_slots, hi - lo]`` for proteins ``lo..hi-1``,
    so memory stays bounded by ``chunk_proteins`` (and a token budget, as pseudo-perplexity
    makes ``n`` copies of an ``n``-residue protein). ``progress`` advances by one per protein.
    """
    chunk_token_budget = max(batch_tokens * 64, 1 << 22)
    lo = 0
    while lo < n_total:
        pieces = _Pieces()
        hi = lo
        while (
            hi < n_total
            and hi - lo < chunk_proteins
            and (hi == lo or pieces.n_tokens < chunk_token_budget)
        ):
            per_protein = pieces_of(hi, ALPHABET.wrap(source[hi]))
            w = 1.0 / max(len(per_protein), 1)
            for slot, x, t in per_protein:
                pieces.add(hi - lo, slot, x, t, w)
            if not per_protein:
                progress.update(1.0)
            hi += 1
        sums = TokenSums.zeros(n_slots, hi - lo)
        _score_pieces(
            model,
            pieces,
            sums,
            unigram=unigram,
            batch_tokens=batch_tokens,
            device=device,
            on_batch=progress.update,
        )
        yield lo, hi, sums
        lo = hi


# --------------------------------------------------------------------------------------------
# One file.


def _std(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _acc(nll: np.ndarray, correct: np.ndarray, count: np.ndarray) -> PerplexityAccumulator:
    return PerplexityAccumulator(float(nll.sum()), int(correct.sum()), int(count.sum()))


def evaluate_source(
    model: nn.Module | Callable[[Tensor, Tensor], Tensor],
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

    ``model(tokens [B, L] long, mask [B, L] bool) -> logits [B, L, V]`` (a
    :class:`~protein_performer.model.PerformerLM` in eval mode, or any callable);
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
        raise ValueError("pseudo_perplexity applies to masked (mlm) models only")
    window, stride = window_and_stride(max_length, opt.window, opt.stride)
    device = resolve_device(opt.device)
    if isinstance(model, nn.Module):
        model.eval()
    unigram = torch.as_tensor(unigram_log_probs, dtype=torch.float64, device=device)

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
            model,
            source,
            pieces_of,
            n_slots=n_slots,
            n_total=n_total,
            batch_tokens=opt.batch_tokens,
            chunk_proteins=opt.chunk_proteins,
            device=device,
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
    writer: "csv._writer",
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


# --------------------------------------------------------------------------------------------
# Input files.


class EvaluationInputError(InputError):
    """An evaluation option that cannot be used (e.g. pseudo-perplexity of a causal model)."""
