"""Variant-effect scores of mutants against a wild type.

MLM (ESM-1v masked marginal): the wild type with one mutated site masked gives
``log p(aa | wt with site masked)``; a mutant's score is the sum over its sites of
``log p(mt) - log p(wt)``. CLM: ``log p(mutant) - log p(wild type)``, each the exact
autoregressive log-likelihood of ``<cls> residues <eos>`` (``<eos>`` scored, ``<cls>`` not).
Higher = the model prefers the mutant. Sequences must fit the model in one window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.batching import Batch
from protein_performer.errors import InputError
from protein_performer.inference.mutations import Mutation, apply_mutant
from protein_performer.model.outputs import ModelOutputs
from protein_performer.objective import Objective
from protein_performer.runner.engine import Engine


def _encode(sequence: str) -> np.ndarray:
    return ALPHABET.wrap(ALPHABET.encode(sequence))


def _check_fits(engine: Engine, n_tokens: int, what: str) -> None:
    max_length = getattr(getattr(engine.model, "cfg", None), "max_length", None)
    if max_length is not None and n_tokens > max_length:
        raise InputError(
            f"{what}: {n_tokens} tokens (with <cls>/<eos>) exceed model.max_length={max_length}; "
            "variant scoring runs the wild type in one window: crop it around the mutated region"
        )


def causal_log_likelihood(
    engine: Engine, sequences: Sequence[str], batch_tokens: int = 16384
) -> np.ndarray:
    """float64 [N]: exact log p(<cls> seq <eos>) of a causal model, one value per sequence."""
    rows = [_encode(s) for s in sequences]
    for i, t in enumerate(rows):
        _check_fits(engine, len(t), f"sequence {i + 1}")
    out = np.empty(len(rows))

    def add(batch: Batch, outputs: ModelOutputs) -> None:
        lp = torch.log_softmax(outputs.logits.double(), dim=-1)  # [B, L, V]
        for b, i in enumerate(batch.index.tolist()):
            n = len(rows[i])
            nxt = batch.tokens[b, 1:n]
            out[i] = float(lp[b, : n - 1].gather(-1, nxt[:, None]).sum())

    engine.run(rows, add, budget=batch_tokens)
    return out


def masked_marginals(engine: Engine, wild_type: str, sites: Sequence[int]) -> dict[int, Tensor]:
    """0-based site -> float64 [V] log-probs at that site with it masked in the wild type."""
    tokens = _encode(wild_type)
    _check_fits(engine, len(tokens), "wild type")
    sites = sorted(set(int(s) for s in sites))
    if not sites:
        return {}
    block = np.tile(tokens, (len(sites), 1))  # [S, L]
    k = np.arange(len(sites))
    block[k, np.asarray(sites) + 1] = ALPHABET.mask_idx  # +1: <cls> comes first
    out: dict[int, Tensor] = {}

    def add(batch: Batch, outputs: ModelOutputs) -> None:
        lp = torch.log_softmax(outputs.logits.double(), dim=-1).cpu()
        for b, i in enumerate(batch.index.tolist()):
            out[sites[i]] = lp[b, sites[i] + 1]

    engine.run(list(block), add, budget=len(sites) * len(tokens))
    return out


def score_mutants(
    engine: Engine, wild_type: str, mutants: Sequence[list[Mutation]], objective: Objective
) -> np.ndarray:
    """float64 [N] variant scores (see module docstring): masked marginals of a masked model,
    log-likelihood ratios of a causal one."""
    if not objective.causal:
        marg = masked_marginals(engine, wild_type, [m.index for ms in mutants for m in ms])
        idx = ALPHABET.index
        return np.array(
            [
                sum(float(marg[m.index][idx(m.mt)] - marg[m.index][idx(m.wt)]) for m in ms)
                for ms in mutants
            ]
        )
    seqs = [apply_mutant(wild_type, ms) for ms in mutants]
    ll = causal_log_likelihood(engine, [wild_type, *seqs])
    return ll[1:] - ll[0]


def spearman(scores: Sequence[float], measured: Sequence[float]) -> float:
    """Spearman rank correlation (scipy), ignoring rows where the measurement is NaN."""
    from scipy.stats import spearmanr

    s, m = np.asarray(scores, dtype=float), np.asarray(measured, dtype=float)
    keep = ~np.isnan(m)
    return float(spearmanr(s[keep], m[keep]).statistic)
