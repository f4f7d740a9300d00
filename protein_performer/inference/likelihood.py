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
evaluation's per-protein numbers (:func:`protein_performer.evaluation.perplexity.score_chunks`),
so the two agree wherever both exist.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

import numpy as np
from torch import Tensor, nn

from protein_performer.data.source import ProteinSource
from protein_performer.devices import resolve_device
from protein_performer.evaluation.perplexity import (
    Piece,
    causal_pieces,
    pseudo_pieces,
    score_chunks,
)
from protein_performer.progress import Progress
from protein_performer.runner.windows import window_and_stride

if TYPE_CHECKING:
    from protein_performer.objective import Objective

#: objective -> how its likelihood is computed (the ``method`` column)
METHODS = {"clm": "exact", "mlm": "pseudo"}
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
    model: nn.Module | Callable[[Tensor, Tensor], Tensor],
    source: ProteinSource,
    *,
    objective: "Objective | str",
    max_length: int,
    window: int | None = None,
    stride: int | None = None,
    batch_tokens: int = 16384,
    max_proteins: int | None = None,
    device: str = "auto",
    progress: bool = True,
    desc: str = "score",
) -> Iterator[ProteinLikelihood]:
    """Yield each protein's :class:`ProteinLikelihood`, in input order, streamed by chunks.

    ``model(tokens [B, L], mask [B, L]) -> logits [B, L, V]`` on ``device`` (eval mode);
    ``objective`` ``clm`` (exact) or ``mlm`` (pseudo); ``window``/``stride``: as evaluation
    (default ``max_length`` and half of it).
    """
    objective = str(objective)  # an Objective or its name
    if objective not in METHODS:
        raise ValueError(f"objective must be one of {sorted(METHODS)}, got {objective!r}")
    window, stride = window_and_stride(max_length, window, stride)
    if isinstance(model, nn.Module):
        model.eval()
    n_total = len(source) if max_proteins is None else min(len(source), max_proteins)
    lengths = np.asarray(source.lengths[:n_total], dtype=np.int64)

    def pieces_of(index: int, tokens: np.ndarray) -> list[Piece]:
        make = causal_pieces if objective == "clm" else pseudo_pieces
        return [(0, x, t) for x, t in make(tokens, window, stride)]

    bar = Progress(n_total, desc, unit="protein", enabled=progress, interval=30.0)
    try:
        for lo, hi, sums in score_chunks(
            model,
            source,
            pieces_of,
            n_slots=1,
            n_total=n_total,
            batch_tokens=batch_tokens,
            chunk_proteins=4096,
            device=resolve_device(device),
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
    model: nn.Module | Callable[[Tensor, Tensor], Tensor],
    path: str | Path,
    sources: Mapping[str, ProteinSource],
    *,
    objective: "Objective | str",
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
            for p in protein_likelihoods(
                model, source, objective=str(objective), desc=label, **kwargs
            ):
                # repr-precision floats; empty cells where nothing was scored
                cells = [p.nll_per_token, p.perplexity] if p.n_tokens else ["", ""]
                writer.writerow(
                    [
                        label,
                        p.accession,
                        p.length,
                        METHODS[str(objective)],
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
