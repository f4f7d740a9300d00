"""Contacts from attention maps (Rao et al. 2020): APC features, an L1 logistic regression,
precision at L/k by sequence separation, bootstrap CIs over chains.

Definitions (those of Rao et al. and ESM's contact head):

* every layer x head attention map over the residues (``<cls>``/``<eos>`` dropped) is
  symmetrised, ``A + A^T``, then corrected by the average product,
  ``APC(A)_ij = A_ij - A_i. A_.j / A_..`` (row sum x column sum / total; :func:`apc`);
* the features of a pair (i, j) are its C corrected maps (C = layers x heads); a logistic
  regression with an L1 penalty (:class:`ContactRegression`) maps them to a contact
  probability, fitted on the pairs with ``|i - j| >= 6`` of a few training chains;
* precision at L/k of a chain of L residues, for a range of separations: of the pairs
  ``i < j`` whose separation lies in the range, take the ``max(1, L // k)`` with the highest
  scores; the precision is the fraction of them in contact (:func:`precision_at`). Ranges:
  long ``|i - j| >= 24``, medium ``12 <= |i - j| < 24``;
* a chain's contact density in a range is the fraction of its pairs in that range that are
  contacts: the expected precision of a random ranking (:func:`contact_density`).

Precisions are averaged over chains; the CI resamples chains (:func:`summarise`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from protein_performer.benchmarks.resample import bootstrap_ci

RANGES: dict[str, tuple[int, int | None]] = {"long": (24, None), "medium": (12, 24)}
FRACTIONS: dict[str, int] = {"L/5": 5, "L/2": 2, "L": 1}
MIN_TRAIN_SEPARATION = 6  # Rao et al. fit on pairs at least 6 apart
DEFAULT_C = 0.15  # inverse L1 strength of the regression (Rao et al.'s choice)


def symmetrize(maps: np.ndarray) -> np.ndarray:
    """``A + A^T`` over the last two axes."""
    return maps + np.swapaxes(maps, -1, -2)


def apc(maps: np.ndarray) -> np.ndarray:
    """Average product correction over the last two axes: ``A - rowsum colsum / total``."""
    a1 = maps.sum(-1, keepdims=True)
    a2 = maps.sum(-2, keepdims=True)
    a12 = maps.sum((-1, -2), keepdims=True)
    return maps - a1 * a2 / np.where(a12 == 0, 1, a12)


def attention_features(maps: np.ndarray) -> np.ndarray:
    """Attention ``[..., L, L]`` over residues -> ``apc(symmetrize(maps))``, float32."""
    return apc(symmetrize(np.asarray(maps, dtype=np.float64))).astype(np.float32)


def separation_pairs(length: int, low: int, high: int | None = None) -> tuple[np.ndarray, ...]:
    """Indices ``(i, j)`` of the pairs ``i < j`` with ``low <= j - i`` (``< high`` if given)."""
    i, j = np.triu_indices(length, k=max(low, 1))
    if high is not None:
        keep = (j - i) < high
        i, j = i[keep], j[keep]
    return i, j


def precision_at(
    scores: np.ndarray, contacts: np.ndarray, low: int, high: int | None, k: int
) -> float:
    """Precision of the top ``max(1, L // k)`` pairs with separation in ``[low, high)``.

    Ties are broken by position (the earlier pair first), so a constant map is deterministic.
    NaN when the chain has no pair in the range.
    """
    length = contacts.shape[0]
    i, j = separation_pairs(length, low, high)
    if i.size == 0:
        return float("nan")
    n = min(max(1, length // k), i.size)
    top = np.argsort(-scores[i, j], kind="stable")[:n]
    return float(contacts[i[top], j[top]].mean())


def contact_density(contacts: np.ndarray, low: int, high: int | None) -> float:
    """Fraction of the pairs with separation in ``[low, high)`` that are contacts."""
    i, j = separation_pairs(contacts.shape[0], low, high)
    return float(contacts[i, j].mean()) if i.size else float("nan")


def chain_precisions(scores: np.ndarray, contacts: np.ndarray) -> dict[tuple[str, str], float]:
    """``{(range, k): precision}`` for every range of :data:`RANGES` and k of :data:`FRACTIONS`."""
    return {
        (name, k): precision_at(scores, contacts, low, high, div)
        for name, (low, high) in RANGES.items()
        for k, div in FRACTIONS.items()
    }


@dataclass
class ContactChain:
    """A chain's features ``[C, L, L]`` (C = layers x heads, APC-corrected) and true contacts."""

    name: str
    features: np.ndarray
    contacts: np.ndarray  # bool [L, L]


def _pair_rows(chain: ContactChain, min_sep: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = separation_pairs(chain.contacts.shape[0], min_sep)
    return chain.features[:, i, j].T, chain.contacts[i, j]


class ContactRegression:
    """Rao et al.'s head: an L1 logistic regression over the C features of each pair."""

    def __init__(self, C: float = DEFAULT_C, min_sep: int = MIN_TRAIN_SEPARATION, seed: int = 0):
        from sklearn.linear_model import LogisticRegression

        self.min_sep = min_sep
        self.model = LogisticRegression(
            C=C, l1_ratio=1.0, solver="liblinear", max_iter=1000, random_state=seed
        )

    def fit(self, chains: list[ContactChain]) -> ContactRegression:
        rows = [_pair_rows(c, self.min_sep) for c in chains]
        x = np.concatenate([r[0] for r in rows])
        y = np.concatenate([r[1] for r in rows])
        if y.min() == y.max():
            raise ValueError("the training chains need both contacts and non-contacts")
        self.model.fit(x, y)
        return self

    def predict(self, chain: ContactChain) -> np.ndarray:
        """float [L, L] symmetric contact probabilities."""
        c, length, _ = chain.features.shape
        flat = chain.features.reshape(c, -1).T  # [L*L, C]
        p = self.model.predict_proba(flat)[:, 1].reshape(length, length)
        return (p + p.T) / 2

    @property
    def weights(self) -> np.ndarray:
        return self.model.coef_[0]


def head_precisions(chains: list[ContactChain], range_name: str = "long", k: str = "L/5"):
    """float [C]: each feature map's mean precision at ``k`` in ``range_name`` over chains."""
    low, high = RANGES[range_name]
    div = FRACTIONS[k]
    n_features = chains[0].features.shape[0]
    return np.array(
        [
            np.nanmean([precision_at(c.features[h], c.contacts, low, high, div) for c in chains])
            for h in range(n_features)
        ]
    )


def per_chain_table(predictor: str, chains: list[ContactChain], scores: list[np.ndarray]):
    """Long table ``predictor, chain, range, k, precision`` of each chain's precisions."""
    rows = []
    for chain, s in zip(chains, scores):
        for (rng, k), value in chain_precisions(s, chain.contacts).items():
            rows.append((predictor, chain.name, rng, k, value))
    return pd.DataFrame(rows, columns=["predictor", "chain", "range", "k", "precision"])


def density_table(chains: list[tuple[str, np.ndarray]]) -> pd.DataFrame:
    """The ``contact_density`` predictor of ``(name, contacts [L, L])`` chains: each chain's
    density in each range (the same for every k)."""
    rows = [
        ("contact_density", name, rng, k, contact_density(contacts, low, high))
        for name, contacts in chains
        for rng, (low, high) in RANGES.items()
        for k in FRACTIONS
    ]
    return pd.DataFrame(rows, columns=["predictor", "chain", "range", "k", "precision"])


def summarise(per_chain: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """``predictor, range, k, precision, ci_low, ci_high, n_chains``: the mean over chains and
    its percentile bootstrap CI (chains resampled with replacement)."""
    rows = []
    for (pred, rng, k), g in per_chain.groupby(["predictor", "range", "k"], sort=False):
        v = g["precision"].to_numpy(float)
        v = v[np.isfinite(v)]
        lo, hi = bootstrap_ci(lambda idx, v=v: v[idx].mean(), len(v), n_boot, seed)
        rows.append((pred, rng, k, float(v.mean()) if v.size else float("nan"), lo, hi, v.size))
    cols = ["predictor", "range", "k", "precision", "ci_low", "ci_high", "n_chains"]
    return pd.DataFrame(rows, columns=cols)
