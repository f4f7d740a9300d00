"""How well scores rank measured variants: Spearman's rho with a bootstrap CI, and NDCG.

- :func:`spearman`: Spearman's rho (average ranks for ties), as ``scipy.stats.spearmanr``.
- :func:`bootstrap_spearman`: the percentile interval of rho over ``n_boot`` resamples of
  the rows with replacement. Each resample is ranked without sorting it: a resampled row's
  rank follows from how many resampled rows hold smaller values (a cumulative sum of the
  resample counts over the rows sorted once), and rho is the Pearson correlation of those
  ranks weighted by the counts. Exact (the same number scipy gives on the resample) and O(N)
  per resample, so 1,000 resamples of GB1's 530,737 doubles take seconds, not minutes.
- :func:`ndcg`: ProteinGym's NDCG (Notin et al. 2023, ``calc_ndcg``): gains are the measured
  values min-max scaled to [0, 1]; the variants the scores rank in the top 10% (k = floor(N /
  10)) contribute gain / log2(rank + 1); divided by the same sum for the measured ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def spearman(scores: np.ndarray, measured: np.ndarray) -> float:
    """Spearman's rho of two float arrays [N] (NaN when either is constant or N < 2)."""
    from scipy.stats import spearmanr

    s, m = np.asarray(scores, np.float64), np.asarray(measured, np.float64)
    if len(s) < 2 or np.ptp(s) == 0 or np.ptp(m) == 0:
        return float("nan")
    return float(spearmanr(s, m).statistic)


def _value_groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the index of its distinct value in increasing order; and the sorted order."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    group_sorted = np.cumsum(np.r_[True, v[1:] != v[:-1]]) - 1
    group = np.empty(len(values), dtype=np.int64)
    group[order] = group_sorted
    return group, int(group_sorted[-1]) + 1


def _resample_ranks(group: np.ndarray, n_groups: int, counts: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) each row would have in the resample holding it ``counts`` times."""
    per_value = np.bincount(group, weights=counts, minlength=n_groups)
    below = np.cumsum(per_value) - per_value
    return (below + (per_value + 1) / 2)[group]


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    total = w.sum()
    dx = x - (w * x).sum() / total
    dy = y - (w * y).sum() / total
    sxx, syy = (w * dx * dx).sum(), (w * dy * dy).sum()
    if sxx <= 0 or syy <= 0:
        return float("nan")
    return float((w * dx * dy).sum() / np.sqrt(sxx * syy))


def boot_count(n: int, n_boot: int, max_draws: float = 2e7) -> int:
    """Resamples for ``n`` rows: ``n_boot``, fewer for big sets so that resamples x rows stays
    under ``max_draws`` (at least 50: GB1's 530,737 doubles get 50, whose interval is
    +-0.003 wide)."""
    return int(min(n_boot, max(50, max_draws // max(n, 1))))


def bootstrap_spearman(
    scores: np.ndarray,
    measured: np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> np.ndarray:
    """float64 [P, 2]: the ``level`` percentile bootstrap interval of Spearman's rho for each
    row of ``scores`` [P, N] (or [N]: then [2]) against ``measured`` [N]; all predictors share
    each resample (see the module doc). NaN where N < 3."""
    s = np.asarray(scores, np.float64)
    single = s.ndim == 1
    s = np.atleast_2d(s)
    m = np.asarray(measured, np.float64)
    n = len(m)
    out = np.full((len(s), 2), np.nan)
    if n < 3 or n_boot < 1:
        return out[0] if single else out
    gm, nm = _value_groups(m)
    groups = [_value_groups(row) for row in s]
    rng = np.random.default_rng(seed)
    rhos = np.empty((len(s), n_boot))
    for b in range(n_boot):
        counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        rm = _resample_ranks(gm, nm, counts)
        for p, (g, ng) in enumerate(groups):
            rhos[p, b] = _weighted_pearson(_resample_ranks(g, ng, counts), rm, counts)
    tail = (1 - level) / 2 * 100
    for p in range(len(s)):
        finite = rhos[p][np.isfinite(rhos[p])]
        if len(finite):
            out[p] = np.percentile(finite, [tail, 100 - tail])
    return out[0] if single else out


def ndcg(scores: np.ndarray, measured: np.ndarray, top: float = 10.0) -> float:
    """ProteinGym's NDCG over the top ``top`` percent (see the module doc); higher = better."""
    s, m = np.asarray(scores, np.float64), np.asarray(measured, np.float64)
    k = int(np.floor(len(m) * top / 100))
    span = np.ptp(m) if len(m) else 0.0
    if k < 1 or span == 0:
        return float("nan")
    gains = (m - m.min()) / span
    discount = 1 / np.log2(np.arange(2, k + 2))  # ranks 1..k
    # Ties in the scores keep row order (a stable sort), so equal scores rank reproducibly.
    picked = np.argsort(-s, kind="stable")[:k]
    ideal = np.sort(gains)[::-1][:k]
    idcg = float((ideal * discount).sum())
    return float((gains[picked] * discount).sum() / idcg) if idcg > 0 else float("nan")


@dataclass(frozen=True)
class RankingScore:
    """One predictor on one set of variants."""

    n: int
    spearman: float
    ci_low: float
    ci_high: float
    ndcg: float
    n_boot: int


def rank_metrics(
    scores: dict[str, np.ndarray], measured: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, RankingScore]:
    """Per predictor: Spearman's rho, its bootstrap CI (resamples shared by the predictors,
    :func:`boot_count` of them) and NDCG, on the rows where every score and the measurement
    are finite (the same rows for every predictor)."""
    m = np.asarray(measured, np.float64)
    keep = np.isfinite(m)
    for v in scores.values():
        keep &= np.isfinite(np.asarray(v, np.float64))
    names = list(scores)
    s = np.stack([np.asarray(scores[k], np.float64)[keep] for k in names]) if names else None
    m = m[keep]
    n = int(keep.sum())
    reps = boot_count(n, n_boot)
    ci = bootstrap_spearman(s, m, n_boot=reps, seed=seed) if names else None
    return {
        k: RankingScore(n, spearman(s[i], m), float(ci[i, 0]), float(ci[i, 1]), ndcg(s[i], m), reps)
        for i, k in enumerate(names)
    }
