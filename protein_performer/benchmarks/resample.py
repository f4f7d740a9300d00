"""Percentile bootstrap over independent items (chains, proteins), for benchmark CIs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n_items: int,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """The ``level`` percentile interval of ``statistic(idx)`` over ``n_boot`` resamples.

    ``idx`` is an int array of ``n_items`` item indices drawn with replacement; statistics
    that come out NaN on a resample (e.g. AUROC with one class) are left out.
    """
    if n_items < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n_items, size=n_items)) for _ in range(n_boot)]
    return percentile_interval(values, level)


def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of the finite ``values`` (NaN, NaN if none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(v, a)), float(np.quantile(v, 1 - a))
