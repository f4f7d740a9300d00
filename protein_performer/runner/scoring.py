"""Token sums of proteins under a model: the scoring engine of evaluation's perplexity and
inference's per-protein likelihoods (one machinery, so their numbers agree).

:func:`score_chunks` turns each protein into model rows (:mod:`~.pieces`), runs them through
the :class:`~protein_performer.runner.engine.Engine` a chunk of proteins at a time, and sums
per (slot, protein) the NLL, arg-max hits and scored tokens of the model and of a unigram
baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.batching import Batch, BatchConverter
from protein_performer.data.source import ProteinSource
from protein_performer.masking import IGNORE
from protein_performer.model.outputs import ModelOutputs
from protein_performer.progress import Progress
from protein_performer.runner.engine import Engine
from protein_performer.runner.pieces import Piece


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
    def zeros(cls, n_slots: int, n_rows: int) -> TokenSums:
        f = lambda dt: np.zeros((n_slots, n_rows), dtype=dt)  # noqa: E731
        return cls(f(np.float64), f(np.int64), f(np.int64), f(np.float64), f(np.int64))


def _score_pieces(
    engine: Engine,
    pieces: _Pieces,
    sums: TokenSums,
    *,
    unigram: Tensor | None,
    batch_tokens: int,
    on_batch: Callable[[float], None],
) -> None:
    """Run the model over all pieces (longest first, ``batch_tokens`` padded tokens per
    batch) and add their token sums into ``sums``."""
    uni_best = int(torch.argmax(unigram)) if unigram is not None else -1
    rows_all = np.asarray(pieces.rows)
    slots_all = np.asarray(pieces.slots)
    targets_of = BatchConverter(pad_idx=IGNORE)

    def add(batch: Batch, out: ModelOutputs) -> None:
        idx = batch.index.numpy()
        targets = targets_of([pieces.targets[j] for j in idx]).tokens.to(engine.device)
        logits = out.logits  # [B, L, V]
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

    engine.run(pieces.inputs, add, budget=batch_tokens)


def score_chunks(
    engine: Engine,
    source: ProteinSource,
    pieces_of: Callable[[int, np.ndarray], list[Piece]],
    *,
    n_slots: int,
    n_total: int,
    batch_tokens: int,
    chunk_proteins: int,
    progress: Progress,
    unigram: Tensor | None = None,
) -> Iterator[tuple[int, int, TokenSums]]:
    """Per-protein token sums of the first ``n_total`` proteins, a chunk at a time.

    ``pieces_of(index, tokens)`` lists the model rows of protein ``index`` (``tokens``: its
    ids wrapped in ``<cls>``/``<eos>``) as :data:`Piece` s: ``(slot, inputs, targets)``
    (targets :data:`IGNORE` where unscored, e.g. from
    :func:`~protein_performer.runner.pieces.causal_pieces` or
    :func:`~protein_performer.runner.pieces.pseudo_pieces`), run by ``engine``. Rows of many
    proteins are batched by the ``batch_tokens`` budget; yields ``(lo, hi, sums)`` with ``sums``
    ``[n_slots, hi - lo]`` for proteins ``lo..hi-1``, so memory stays bounded by ``chunk_proteins``
    (and a token budget, as pseudo-perplexity
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
            engine,
            pieces,
            sums,
            unigram=unigram,
            batch_tokens=batch_tokens,
            on_batch=progress.update,
        )
        yield lo, hi, sums
        lo = hi
