"""Per-protein log-likelihood, mean NLL and perplexity of a trained LM.

* Causal (``clm``) models, ``method = exact``: ``log_likelihood`` = log p(<cls> residues <eos>)
  = the sum over every residue and the closing ``<eos>`` of log p(token | tokens before it)
  (``n_tokens`` = length + 1; the number variant scoring's
  :func:`~protein_performer.inference.score.causal_log_likelihood` gives).
* Masked (``mlm``) models, ``method = pseudo``: the pseudo-log-likelihood (as ESM reports it):
  the sum over residues of log p(residue | all other tokens), each residue masked in turn
  (``n_tokens`` = length; one model row per residue, batched by a token budget).

``nll_per_token`` = -log_likelihood / n_tokens (nats), ``perplexity`` = exp(nll_per_token).
Natural logarithms throughout. Proteins longer than the model's window are scored through
the sliding windows of :mod:`protein_performer.runner.windows`, by the same machinery as
evaluation's per-protein numbers (:func:`protein_performer.runner.scoring.score_chunks`),
so the two agree wherever both exist.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protein_performer.data.source import ProteinSource
from protein_performer.objective import Objective
from protein_performer.progress import Progress
from protein_performer.runner.engine import Engine
from protein_performer.runner.pieces import Piece, causal_pieces, pseudo_pieces
from protein_performer.runner.scoring import score_chunks
from protein_performer.runner.windows import window_and_stride

COLUMNS = (
    "file",
    "accession",
    "length",
    "method",
    "n_tokens",
    "log_likelihood",
    "nll_per_token",
    "perplexity",
)


def method(objective: Objective) -> str:
    """How a model of this objective scores a protein (the ``method`` column): ``exact``
    (causal) or ``pseudo`` (masked)."""
    return "exact" if objective.causal else "pseudo"


@dataclass(frozen=True)
class ProteinLikelihood:
    """One protein's score (module docstring); nll/perplexity are NaN when nothing is scored."""

    accession: str
    length: int
    n_tokens: int
    log_likelihood: float

    @property
    def nll_per_token(self) -> float:
        return -self.log_likelihood / self.n_tokens if self.n_tokens else math.nan

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll_per_token) if self.n_tokens else math.nan


def protein_likelihoods(
    engine: Engine,
    source: ProteinSource,
    *,
    objective: Objective,
    max_length: int,
    window: int | None = None,
    stride: int | None = None,
    batch_tokens: int = 16384,
    max_proteins: int | None = None,
    progress: bool = True,
    desc: str = "score",
) -> Iterator[ProteinLikelihood]:
    """Yield each protein's :class:`ProteinLikelihood`, in input order, streamed by chunks.

    ``engine`` runs the model (device decided); ``objective``: causal -> exact, masked ->
    pseudo (:func:`method`); ``window``/``stride``: as evaluation (default ``max_length`` and
    half of it).
    """
    window, stride = window_and_stride(max_length, window, stride)
    make = causal_pieces if objective.causal else pseudo_pieces
    n_total = len(source) if max_proteins is None else min(len(source), max_proteins)
    lengths = np.asarray(source.lengths[:n_total], dtype=np.int64)

    def pieces_of(index: int, tokens: np.ndarray) -> list[Piece]:
        return [(0, x, t) for x, t in make(tokens, window, stride)]

    bar = Progress(n_total, desc, unit="protein", enabled=progress, interval=30.0)
    try:
        for lo, hi, sums in score_chunks(
            engine,
            source,
            pieces_of,
            n_slots=1,
            n_total=n_total,
            batch_tokens=batch_tokens,
            chunk_proteins=4096,
            progress=bar,
        ):
            for r in range(hi - lo):
                yield ProteinLikelihood(
                    source.accession(lo + r),
                    int(lengths[lo + r]),
                    int(sums.count[0, r]),
                    -float(sums.nll[0, r]),
                )
    finally:
        bar.close()


def write_likelihoods_csv(
    engine: Engine,
    path: str | Path,
    sources: Mapping[str, ProteinSource],
    *,
    objective: Objective,
    **kwargs,
) -> dict[str, dict[str, float | int]]:
    """Score every protein of every source into one CSV (:data:`COLUMNS`, one row each).

    ``sources``: file label -> proteins; ``kwargs`` go to :func:`protein_likelihoods`.
    Returns per label the token-weighted totals: ``n_sequences``, ``n_tokens``,
    ``nll_per_token`` and ``perplexity`` (exp of the pooled mean, not a mean of perplexities).
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    totals: dict[str, dict[str, float | int]] = {}
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for label, source in sources.items():
            n, tokens, ll = 0, 0, 0.0
            for p in protein_likelihoods(engine, source, objective=objective, desc=label, **kwargs):
                # repr-precision floats; empty cells where nothing was scored
                cells = [p.nll_per_token, p.perplexity] if p.n_tokens else ["", ""]
                writer.writerow(
                    [
                        label,
                        p.accession,
                        p.length,
                        method(objective),
                        p.n_tokens,
                        p.log_likelihood,
                        *cells,
                    ]
                )
                n, tokens, ll = n + 1, tokens + p.n_tokens, ll + p.log_likelihood
            handle.flush()
            nll = -ll / tokens if tokens else math.nan
            totals[label] = {
                "n_sequences": n,
                "n_tokens": tokens,
                "nll_per_token": nll,
                "perplexity": math.exp(nll) if tokens else math.nan,
            }
    return totals
