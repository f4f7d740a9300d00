"""Substitution matrices (Biopython) and how an attention-derived matrix compares with them.

Statistics, for a symmetric 20 x 20 matrix ``A`` against a reference ``S`` (e.g. BLOSUM62):
Pearson and Spearman correlation over the amino-acid pairs a < b (190 values, "off-diagonal")
and over a <= b (210 values, "with diagonal"). A non-symmetric ``A`` (the direct mode) is
symmetrised first, ``(A + A^T) / 2``, since substitution matrices are symmetric.

Significance: the pairs are not independent samples (each amino acid appears in 19 of them),
so scipy's p-values, which assume they are, are optimistic. We add a **Mantel permutation
test**: the amino-acid labels of ``A`` are permuted (rows and columns jointly, one permutation
of the 20 letters), which keeps the matrix structure and breaks only its alignment with ``S``.
The p-value is one-sided (the alternative: attention agrees with the substitution matrix,
r > 0), ``(1 + #{r_perm >= r_obs}) / (1 + n_permutations)``.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy import stats

from protein_performer.analysis.aggregate import AMINO_ACIDS, N_AA
from protein_performer.errors import InputError


class UnknownMatrixError(InputError):
    """A substitution matrix name Biopython does not know."""


def available_matrices() -> list[str]:
    """Names :func:`Bio.Align.substitution_matrices.load` accepts."""
    from Bio.Align import substitution_matrices

    return list(substitution_matrices.load())


@cache
def _load(name: str) -> np.ndarray:
    from Bio.Align import substitution_matrices

    names = available_matrices()
    match = {n.upper(): n for n in names}.get(name.upper())
    if match is None:
        raise UnknownMatrixError(
            f"unknown substitution matrix {name!r}; Bio.Align.substitution_matrices knows: "
            f"{', '.join(names)}"
        )
    m = substitution_matrices.load(match)
    missing = [a for a in AMINO_ACIDS if a not in m.alphabet]
    if missing:
        raise UnknownMatrixError(
            f"substitution matrix {match} lacks amino acids {''.join(missing)} (a nucleotide "
            f"matrix?); use a protein matrix such as BLOSUM62, BLOSUM45, BLOSUM80, PAM250"
        )
    out = np.array([[m[a, b] for b in AMINO_ACIDS] for a in AMINO_ACIDS], dtype=np.float64)
    out.setflags(write=False)
    return out


def load_matrix(name: str = "BLOSUM62") -> np.ndarray:
    """The 20 x 20 substitution matrix ``name`` (case-insensitive) in alphabetical order."""
    return _load(name).copy()


def pair_values(matrix: np.ndarray, include_diagonal: bool = False) -> np.ndarray:
    """Upper-triangle values of a 20 x 20 matrix: 190 pairs a < b, or 210 with a == b."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (N_AA, N_AA):
        raise ValueError(f"expected a {N_AA} x {N_AA} matrix, got {m.shape}")
    i, j = np.triu_indices(N_AA, k=0 if include_diagonal else 1)
    return m[i, j]


def symmetrise(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64)
    return (m + m.T) / 2


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row of x [n, p] with y [p]."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc @ yc) / (np.sqrt((xc**2).sum(axis=-1)) * np.sqrt((yc**2).sum()))


def mantel_p_value(
    matrix: np.ndarray,
    reference: np.ndarray,
    include_diagonal: bool = False,
    n_permutations: int = 1000,
    seed: int = 0,
    method: str = "pearson",
) -> float:
    """One-sided Mantel permutation p-value of corr(matrix, reference) > 0.

    Each permutation relabels the amino acids of ``matrix`` (rows and columns jointly).
    Pairs where ``matrix`` is NaN are left out, in the observed and the permuted statistic.
    """
    if n_permutations <= 0:
        return float("nan")
    a = symmetrise(matrix)
    ref = pair_values(reference, include_diagonal)
    i, j = np.triu_indices(N_AA, k=0 if include_diagonal else 1)
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(N_AA) for _ in range(n_permutations)])  # [n, 20]
    permuted = a[perms[:, i], perms[:, j]]  # [n, pairs]: A[p(a), p(b)]
    observed = a[i, j][None]
    if method == "spearman":
        ref = stats.rankdata(ref)
        rank = lambda v: np.apply_along_axis(stats.rankdata, -1, v)  # noqa: E731
        permuted, observed = rank(permuted), rank(observed)
    if not (np.isfinite(observed).all() and np.isfinite(permuted).all()):
        r_obs = _nan_corr(observed[0], ref)
        r_perm = np.array([_nan_corr(p, ref) for p in permuted])
    else:
        r_obs = float(_pearson_rows(observed, ref)[0])
        r_perm = _pearson_rows(permuted, ref)
    if not np.isfinite(r_obs):
        return float("nan")
    # a tiny tolerance so permutations equal to the observed value count as ">="
    return float((1 + np.sum(r_perm >= r_obs - 1e-12)) / (1 + n_permutations))


def _nan_corr(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan")
    return float(_pearson_rows(x[ok][None], y[ok])[0])


def compare_matrices(
    matrix: np.ndarray,
    reference: np.ndarray | str = "BLOSUM62",
    n_permutations: int = 1000,
    seed: int = 0,
) -> dict[str, float | int]:
    """Pearson / Spearman of ``matrix`` with ``reference``, off-diagonal and with diagonal.

    Keys: ``pearson``, ``pearson_p``, ``spearman``, ``spearman_p``, ``n_pairs``,
    ``permutation_p`` (Mantel, on Pearson) for the off-diagonal pairs, and the same with
    suffix ``_diag`` for pairs incl. the diagonal. Pairs where ``matrix`` is NaN are dropped
    (``n_pairs`` counts those used); fewer than 3 give NaN statistics.
    """
    ref = load_matrix(reference) if isinstance(reference, str) else np.asarray(reference, float)
    a = symmetrise(matrix)
    out: dict[str, float | int] = {}
    for diag, suffix in ((False, ""), (True, "_diag")):
        x, y = pair_values(a, diag), pair_values(ref, diag)
        ok = np.isfinite(x)
        x, y = x[ok], y[ok]
        res: dict[str, float | int] = {"n_pairs": int(ok.sum())}
        if ok.sum() >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            pr = stats.pearsonr(x, y)
            sr = stats.spearmanr(x, y)
            res.update(
                pearson=float(pr.statistic),
                pearson_p=float(pr.pvalue),
                spearman=float(sr.statistic),
                spearman_p=float(sr.pvalue),
            )
            res["permutation_p"] = mantel_p_value(a, ref, diag, n_permutations, seed)
        else:
            res.update(
                pearson=float("nan"),
                pearson_p=float("nan"),
                spearman=float("nan"),
                spearman_p=float("nan"),
                permutation_p=float("nan"),
            )
        out.update({k + suffix: v for k, v in res.items()})
    return out


def pearson_offdiag(matrix: np.ndarray, reference: np.ndarray) -> float:
    """Pearson r over the 190 off-diagonal pairs (NaN pairs dropped); NaN if undefined."""
    return _nan_corr(pair_values(symmetrise(matrix)), pair_values(reference))
