"""Every variant of an :class:`~protein_performer.benchmarks.dms_data.Assay` scored by a model,
through the runner's :class:`~protein_performer.runner.Engine` (packed batches, one pass each).

- causal LM (``clm``): the log-likelihood ratio log p(mutant) - log p(wild type), each the
  autoregressive log-likelihood of the window's tokens. Targets before the first mutated
  token have the same prefix in both sequences, so they cancel exactly and are not summed:
  a variant's row contributes the log-probabilities of its targets from its first mutated
  token on, the wild type's row (run once per window) the same suffix of its own. Causal
  models with decoding states (every kind here) share the prefixes: each variant runs only
  from its last mutated token, from the states of its variant with that site reverted
  (:mod:`protein_performer.runner.prefix`); others run one full row per variant.
- masked LM (``mlm``): the masked marginal of ESM-1v (Meier et al. 2021): the wild type with
  one mutated site masked gives log p(residue | context) at that site, one row per distinct
  site; a variant scores the sum over its sites of log p(mutant) - log p(wild type).

Wild types longer than the model are scored in windows of ``max_length - 2`` residues around
the mutated positions (ProteinGym's treatment of ESM past 1,022 residues): MLM centres a
window on each site; CLM centres one window on the middle of a variant's sites, and a variant
whose sites span more than a window is split into groups of sites, one window each, whose
ratios add up (an approximation: the groups are scored as if independent). A window holds
``<cls>`` only when it starts at the first residue and ``<eos>`` only when it ends at the last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from protein_performer.benchmarks.dms_data import Assay
from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.batching import Batch
from protein_performer.progress import Progress
from protein_performer.runner import Engine, ModelOutputs
from protein_performer.runner.prefix import (
    shared_prefix_log_probs,
    sharing_pays,
    walks_from_prefix,
)

STRATEGIES = {
    "clm": "log-likelihood ratio (causal LM)",
    "mlm": "masked marginal (masked LM)",
}

Scores = tuple[np.ndarray, np.ndarray]  # float64 [N] scores, int64 [N] windows per variant

# ASCII code -> token index of the residue letters.
_TOKEN_OF = np.zeros(256, dtype=np.int64)
for _letter, _idx in zip(ALPHABET.tokens[ALPHABET.first_residue_idx :], ALPHABET.residue_idx):
    _TOKEN_OF[ord(_letter)] = _idx


def window_span(center: int, length: int, max_length: int) -> tuple[int, int]:
    """Residues ``[start, end)`` fed to the model around residue ``center``: the whole protein
    when ``<cls>`` + it + ``<eos>`` fit ``max_length``, else ``max_length - 2`` residues
    centred on ``center`` (shifted to stay inside the protein)."""
    if length + 2 <= max_length:
        return 0, length
    width = max_length - 2
    if width < 1:
        raise ValueError(f"max_length must be >= 3 to hold a window, got {max_length}")
    start = min(max(center - width // 2, 0), length - width)
    return start, start + width


def window_tokens(residues: np.ndarray, start: int, end: int) -> tuple[np.ndarray, int]:
    """uint8 tokens of residues [start, end) (``<cls>``/``<eos>`` at the protein's own ends)
    and the token position of residue ``start``."""
    lead = int(start == 0)
    tail = int(end == len(residues))
    out = np.empty(end - start + lead + tail, dtype=np.uint8)
    if lead:
        out[0] = ALPHABET.cls_idx
    out[lead : lead + end - start] = residues[start:end]
    if tail:
        out[-1] = ALPHABET.eos_idx
    return out, lead


@dataclass
class Segments:
    """A variant's mutations grouped by the window that scores them (see the module doc):
    ``variant`` [S] the variant's row, ``start``/``end`` [S] the residue window,
    ``sites``/``alts`` [S, K] the mutations inside it (-1 / "" padding)."""

    variant: np.ndarray
    start: np.ndarray
    end: np.ndarray
    sites: np.ndarray
    alts: np.ndarray


def _centred_start(lo: np.ndarray, hi: np.ndarray, width: int, length: int) -> np.ndarray:
    """Start of a ``width``-residue window centred on sites ``lo..hi`` (``hi - lo < width``),
    holding both of them and inside the protein."""
    centred = (lo + hi) // 2 - width // 2
    return np.clip(np.clip(centred, hi - width + 1, lo), 0, length - width)


def plan_segments(assay: Assay, max_length: int) -> Segments:
    """One window per variant (vectorised), split where its sites span more than a window."""
    length = len(assay.wild_type)
    n, k = assay.sites.shape
    if length + 2 <= max_length:
        zeros = np.zeros(n, dtype=np.int64)
        return Segments(np.arange(n), zeros, zeros + length, assay.sites, assay.alts)
    width = max_length - 2
    real = assay.sites >= 0
    lo = np.where(real, assay.sites, length).min(axis=1)
    hi = np.where(real, assay.sites, -1).max(axis=1)
    fits = hi - lo < width
    variant, start, sites, alts = [], [], [], []
    idx = np.nonzero(fits)[0]
    starts = _centred_start(lo[idx], hi[idx], width, length)
    variant.append(idx)
    start.append(starts)
    sites.append(assay.sites[idx])
    alts.append(assay.alts[idx])
    for i in np.nonzero(~fits)[0]:  # rare: sites farther apart than a window
        order = np.argsort(np.where(real[i], assay.sites[i], length))[: real[i].sum()]
        groups: list[list[int]] = [[order[0]]]
        for j in order[1:]:
            if assay.sites[i, j] - assay.sites[i, groups[-1][0]] < width:
                groups[-1].append(j)
            else:
                groups.append([j])
        for g in groups:
            g_sites = np.full((1, k), -1, dtype=np.int64)
            g_alts = np.full((1, k), "", dtype=object)
            g_sites[0, : len(g)] = assay.sites[i, g]
            g_alts[0, : len(g)] = assay.alts[i, g]
            variant.append(np.array([i]))
            start.append(
                _centred_start(g_sites[0, :1], g_sites[0, len(g) - 1 : len(g)], width, length)
            )
            sites.append(g_sites)
            alts.append(g_alts)
    start_all = np.concatenate(start).astype(np.int64)
    return Segments(
        np.concatenate(variant),
        start_all,
        start_all + width,
        np.concatenate(sites),
        np.concatenate(alts),
    )


def _alt_tokens(alts: np.ndarray, real: np.ndarray) -> np.ndarray:
    out = np.zeros(alts.shape, dtype=np.int64)
    out[real] = _TOKEN_OF[np.frombuffer("".join(alts[real]).encode(), np.uint8)]
    return out


def _wild_type_tokens(assay: Assay) -> np.ndarray:
    return _TOKEN_OF[np.frombuffer(assay.wild_type.encode(), np.uint8)].astype(np.uint8)


def _target_log_probs(batch: Batch, outputs: ModelOutputs) -> torch.Tensor:
    """float32 [B, L]: log p(token t | tokens < t) at t >= 1 (0 at t = 0 and on padding),
    the log-softmax gathered at the targets only."""
    logits = outputs.logits[:, :-1].float()  # [B, L-1, V] predicting tokens 1..L-1
    target = batch.tokens[:, 1:]
    picked = logits.gather(-1, target[..., None])[..., 0] - torch.logsumexp(logits, dim=-1)
    picked = picked.masked_fill(~batch.mask[:, 1:], 0.0)
    return torch.nn.functional.pad(picked, (1, 0))


def _mutant_rows(wt_row: np.ndarray, pos: np.ndarray, alt: np.ndarray, real: np.ndarray):
    """uint8 [S, L]: the window's wild-type tokens with each segment's substitutions."""
    rows = np.tile(wt_row, (len(pos), 1))
    r, c = np.nonzero(real)
    rows[r, pos[r, c]] = alt[r, c]
    return rows


def _suffix_sums(per_target: np.ndarray) -> np.ndarray:
    """suffix[t] = sum of the per-target log-probs of targets t, t+1, ... (float64)."""
    return np.cumsum(per_target[::-1])[::-1]


def _shared_prefix_sums(engine, wt_rows, win, pos, alt, real, first, budget, progress):
    """Mutant and wild-type sums from ``first`` on, each window's variants run from their
    branch point (:func:`~protein_performer.runner.prefix.shared_prefix_log_probs`) where
    enough of them share each parent, else one full row each."""
    mutant_sums, wt_part = np.zeros(len(win)), np.zeros(len(win))
    for w, wt_row in enumerate(wt_rows):
        idx = np.nonzero(win == w)[0]
        rows = _mutant_rows(wt_row, pos[idx], alt[idx], real[idx])
        if not sharing_pays(wt_row, rows):  # few variants per parent: full rows are faster
            one = (engine, [wt_row], np.zeros_like(idx), pos[idx], alt[idx], real[idx])
            mutant_sums[idx], wt_part[idx] = _full_row_sums(*one, first[idx], budget, progress)
            continue
        sums, wt_lp = shared_prefix_log_probs(
            engine, wt_row, rows, first[idx], budget=budget, progress=progress
        )
        mutant_sums[idx] = sums
        wt_part[idx] = _suffix_sums(wt_lp)[first[idx]]
    return mutant_sums, wt_part


def _full_row_sums(engine, wt_rows, win, pos, alt, real, first, budget, progress):
    """Mutant and wild-type sums from ``first`` on, one full row per variant (kinds without
    decoding states)."""
    n_wt = len(wt_rows)
    rows = list(wt_rows)
    for i in range(len(win)):
        rows.extend(_mutant_rows(wt_rows[win[i]], pos[i : i + 1], alt[i : i + 1], real[i : i + 1]))
    from_token = np.concatenate([np.ones(n_wt, dtype=np.int64), first])
    sums = np.zeros(len(rows))
    wt_suffix: dict[int, np.ndarray] = {}

    def per_batch(batch: Batch, outputs: ModelOutputs) -> None:
        lp = _target_log_probs(batch, outputs)  # [B, L]
        index = batch.index.numpy()
        steps = torch.arange(lp.shape[1])[None, :]
        keep = steps >= torch.from_numpy(from_token[index])[:, None]
        sums[index] = (lp * keep).double().sum(1).numpy()
        for b in np.nonzero(index < n_wt)[0]:
            wt_suffix[int(index[b])] = _suffix_sums(lp[b].double().numpy())

    engine.run(rows, per_batch, budget=budget, progress=progress)
    return sums[n_wt:], np.array([wt_suffix[w][f] for w, f in zip(win, first)])


def causal_scores(
    engine: Engine, assay: Assay, max_length: int, budget: int, progress: Progress | None
) -> Scores:
    """float64 [N] log-likelihood ratios (see the module doc) and int64 [N] windows per variant.

    Models with decoding states (:func:`~protein_performer.runner.prefix.walks_from_prefix`)
    run each variant from its last mutated token on, the rest from shared prefixes; others
    one full row per variant."""
    wt = _wild_type_tokens(assay)
    seg = plan_segments(assay, max_length)
    real = seg.sites >= 0
    starts = np.unique(seg.start)
    win = np.searchsorted(starts, seg.start)  # each segment's window
    wt_rows = [
        window_tokens(wt, int(s), int(seg.end[win == i][0]))[0] for i, s in enumerate(starts)
    ]
    lead = (seg.start == 0).astype(np.int64)  # <cls> leads only the window at residue 0
    pos = np.where(real, seg.sites - seg.start[:, None] + lead[:, None], 0)
    first = np.where(real, pos, np.iinfo(np.int64).max).min(axis=1)  # first mutated token
    alt = _alt_tokens(seg.alts, real)
    sums = _shared_prefix_sums if walks_from_prefix(engine.model) else _full_row_sums
    mutant_sums, wt_part = sums(engine, wt_rows, win, pos, alt, real, first, budget, progress)
    scores = np.bincount(seg.variant, weights=mutant_sums - wt_part, minlength=len(assay))
    return scores, np.bincount(seg.variant, minlength=len(assay))


def masked_marginal_scores(
    engine: Engine, assay: Assay, max_length: int, budget: int, progress: Progress | None
) -> Scores:
    """float64 [N] masked-marginal scores (see the module doc) and int64 [N] windows used."""
    wt = _wild_type_tokens(assay)
    real = assay.sites >= 0
    sites = np.unique(assay.sites[real])
    rows, mask_pos = [], np.empty(len(sites), dtype=np.int64)
    for i, s in enumerate(sites):
        start, end = window_span(int(s), len(wt), max_length)
        tokens, lead = window_tokens(wt, start, end)
        mask_pos[i] = s - start + lead
        tokens[mask_pos[i]] = ALPHABET.mask_idx
        rows.append(tokens)
    table = np.zeros((len(sites), len(ALPHABET)))

    def per_batch(batch: Batch, outputs: ModelOutputs) -> None:
        index = batch.index
        at = torch.from_numpy(mask_pos[index.numpy()])
        logits = outputs.logits[torch.arange(len(index)), at].double()  # [B, V]
        table[index.numpy()] = torch.log_softmax(logits, dim=-1).numpy()

    engine.run(rows, per_batch, budget=budget, progress=progress)
    site_row = np.searchsorted(sites, np.where(real, assay.sites, sites[0] if len(sites) else 0))
    alt = _alt_tokens(assay.alts, real)
    ref = wt[np.where(real, assay.sites, 0)].astype(np.int64)
    delta = table[site_row, alt] - table[site_row, ref]
    return (delta * real).sum(axis=1), real.sum(axis=1)


SCORERS: dict[str, Callable[..., Scores]] = {
    "clm": causal_scores,
    "mlm": masked_marginal_scores,
}


def score_assay(
    engine: Engine,
    objective: str,
    assay: Assay,
    max_length: int,
    *,
    budget: int = 65536,
    progress: Progress | None = None,
) -> Scores:
    """The objective's scorer (``clm`` or ``mlm``) on every variant of ``assay``."""
    if objective not in SCORERS:
        raise ValueError(f"objective must be one of {sorted(SCORERS)}, got {objective!r}")
    return SCORERS[objective](engine, assay, max_length, budget, progress)
