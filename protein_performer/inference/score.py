"""Variant-effect scores of mutants against a wild type.

MLM (ESM-1v masked marginal): the wild type with one mutated site masked gives
``log p(aa | wt with site masked)``; a mutant's score is the sum over its sites of
``log p(mt) - log p(wt)``. CLM: ``log p(mutant) - log p(wild type)``, each the exact
autoregressive log-likelihood of ``<cls> residues <eos>`` (``<eos>`` scored, ``<cls>`` not).
Higher = the model prefers the mutant. Sequences must fit the model in one window.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from protein_performer.data.alphabet import ALPHABET
from protein_performer.inference.mutations import Mutation, apply_mutant

Model = Callable[[Tensor, Tensor], Tensor]  # tokens [B, L], mask [B, L] -> logits [B, L, V]


def _encode(sequence: str) -> np.ndarray:
    return ALPHABET.wrap(ALPHABET.encode(sequence))


def _check_fits(model: Model, n_tokens: int, what: str) -> None:
    max_length = getattr(getattr(model, "cfg", None), "max_length", None)
    if max_length is not None and n_tokens > max_length:
        raise ValueError(
            f"{what}: {n_tokens} tokens (with <cls>/<eos>) exceed model.max_length={max_length}; "
            "variant scoring runs the wild type in one window: crop it around the mutated region"
        )


@torch.no_grad()
def _log_probs(model: Model, batch: np.ndarray) -> Tensor:
    """int64 [B, L] -> float64 log-softmax [B, L, V]."""
    tokens = torch.as_tensor(batch)
    logits = model(tokens, torch.ones_like(tokens, dtype=torch.bool))
    return torch.log_softmax(logits.double(), dim=-1)


def causal_log_likelihood(
    model: Model, sequences: Sequence[str], batch_size: int = 8
) -> np.ndarray:
    """float64 [N]: exact log p(<cls> seq <eos>) of a causal model, one value per sequence."""
    out = np.empty(len(sequences))
    for start in range(0, len(sequences), batch_size):
        chunk = [_encode(s) for s in sequences[start : start + batch_size]]
        width = max(len(t) for t in chunk)
        _check_fits(model, width, f"sequence {start + 1}")
        batch = np.full((len(chunk), width), ALPHABET.pad_idx, dtype=np.int64)
        for i, t in enumerate(chunk):
            batch[i, : len(t)] = t
        lp = _log_probs(model, batch)  # [B, L, V]
        for i, t in enumerate(chunk):
            nxt = torch.as_tensor(t[1:])
            out[start + i] = float(lp[i, : len(t) - 1].gather(-1, nxt[:, None]).sum())
    return out


def masked_marginals(model: Model, wild_type: str, sites: Sequence[int]) -> dict[int, Tensor]:
    """0-based site -> float64 [V] log-probs at that site with it masked in the wild type."""
    tokens = _encode(wild_type)
    _check_fits(model, len(tokens), "wild type")
    sites = sorted(set(int(s) for s in sites))
    if not sites:
        return {}
    block = np.tile(tokens, (len(sites), 1))  # [S, L]
    k = np.arange(len(sites))
    block[k, np.asarray(sites) + 1] = ALPHABET.mask_idx  # +1: <cls> comes first
    lp = _log_probs(model, block)
    return {s: lp[i, s + 1] for i, s in enumerate(sites)}


def score_mutants(
    model: Model, wild_type: str, mutants: Sequence[list[Mutation]], objective: str
) -> np.ndarray:
    """float64 [N] variant scores (see module docstring); ``objective`` is ``mlm`` or ``clm``."""
    if objective == "mlm":
        marg = masked_marginals(model, wild_type, [m.index for ms in mutants for m in ms])
        idx = ALPHABET.index
        return np.array(
            [
                sum(float(marg[m.index][idx(m.mt)] - marg[m.index][idx(m.wt)]) for m in ms)
                for ms in mutants
            ]
        )
    if objective == "clm":
        seqs = [apply_mutant(wild_type, ms) for ms in mutants]
        ll = causal_log_likelihood(model, [wild_type, *seqs])
        return ll[1:] - ll[0]
    raise ValueError(f"objective must be 'mlm' or 'clm', got {objective!r}")


def spearman(scores: Sequence[float], measured: Sequence[float]) -> float:
    """Spearman rank correlation (scipy), ignoring rows where the measurement is NaN."""
    from scipy.stats import spearmanr

    s, m = np.asarray(scores, dtype=float), np.asarray(measured, dtype=float)
    keep = ~np.isnan(m)
    return float(spearmanr(s[keep], m[keep]).statistic)
