"""Attention maps -> amino-acid statistics (pure numpy/torch; no model, no plotting).

Two aggregations, both accumulated as sums over proteins so memory does not grow with the
number of proteins:

**Vig et al. 2020 ("BERTology Meets Biology", sec. 4.3), the default.** For every head h
(over all layers), the attention-weighted share of attention whose *target* residue j is
amino acid X::

    p_h(X) = sum_{proteins} sum_{i,j} a_ij [a_ij >= t] [aa(j) = X]
             / sum_{proteins} sum_{i,j} a_ij [a_ij >= t]

with threshold ``t`` (0.1 by default; weights below it count as zero). Heads whose total
thresholded weight (the denominator) is below ``min_total_weight`` are excluded (and
counted), since their shares are noise. Each amino acid X then has a vector
``(p_h(X))_h`` over the kept heads; the similarity of amino acids a and b is the Pearson
correlation of their vectors, a symmetric 20 x 20 matrix (:func:`vig_similarity`).

**Direct mode.** For every head, the (thresholded) attention mass from query residues of
type a to target residues of type b, ``O[a, b]``, compared with what it would be if query
and target type were independent given their marginals::

    ratio[a, b] = O[a, b] * sum(O) / (sum_b' O[a, b'] * sum_a' O[a', b])

(observed / expected; >1: a attends to b more than the residue frequencies and the head's
overall preference for b explain). Optionally log2, like the log-odds of BLOSUM, with a
pseudocount so that sparse heads stay finite.

Only the 20 standard amino acids take part, as queries and as targets: special tokens
(``<cls>``, ``<eos>``, ``<pad>``, ...) and rare residues (X, B, Z, U, O) are excluded from
both numerator and denominator, so the 20 shares of a head sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from protein_performer.data.alphabet import ALPHABET, STANDARD_AMINO_ACIDS

AMINO_ACIDS: str = STANDARD_AMINO_ACIDS  # alphabetical: the row/column order of every matrix
N_AA: int = len(AMINO_ACIDS)

# Physico-chemical classes, the order used by the figures.
AA_GROUPS: dict[str, str] = {
    "hydrophobic": "AVLIMC",
    "aromatic": "FWY",
    "polar": "STNQ",
    "positive": "KRH",
    "negative": "DE",
    "special": "GP",
}
GROUPED_ORDER: str = "".join(AA_GROUPS.values())
assert sorted(GROUPED_ORDER) == sorted(AMINO_ACIDS)


def amino_acid_classes(tokens: Tensor | np.ndarray) -> Tensor:
    """Token ids [...] -> amino-acid class 0..19 (alphabetical), -1 for everything else."""
    t = torch.as_tensor(tokens).long()
    first = int(ALPHABET.standard_idx[0])
    cls = t - first
    return torch.where((cls >= 0) & (cls < N_AA), cls, torch.full_like(cls, -1))


def one_hot_classes(classes: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """Classes [B, L] (-1 = excluded) -> one-hot [B, L, 20] with zero rows for excluded."""
    valid = classes >= 0
    oh = torch.nn.functional.one_hot(classes.clamp(min=0), N_AA).to(dtype)
    return oh * valid.unsqueeze(-1).to(dtype)


def threshold_attention(attn: Tensor, threshold: float) -> Tensor:
    """Weights below ``threshold`` set to zero (``a_ij [a_ij >= t]``)."""
    if threshold <= 0:
        return attn
    return torch.where(attn >= threshold, attn, torch.zeros_like(attn))


@dataclass
class AttentionAggregates:
    """Sums over proteins for ``n_heads`` heads (all layers, layer-major: h = layer * H + head).

    ``target_mass[h, X]``: thresholded attention onto targets of type X (Vig numerator);
    ``pair_mass[h, a, b]``: thresholded attention from type a to type b (direct mode);
    ``residue_counts[X]``: residues of type X seen (as queries).
    """

    n_layers: int
    n_heads: int  # per layer
    threshold: float = 0.1
    target_mass: np.ndarray = field(init=False)
    pair_mass: np.ndarray = field(init=False)
    residue_counts: np.ndarray = field(init=False)
    n_proteins: int = 0

    def __post_init__(self) -> None:
        n = self.n_layers * self.n_heads
        self.target_mass = np.zeros((n, N_AA))
        self.pair_mass = np.zeros((n, N_AA, N_AA))
        self.residue_counts = np.zeros(N_AA, dtype=np.int64)

    @property
    def n_heads_total(self) -> int:
        return self.n_layers * self.n_heads

    @property
    def total_weight(self) -> np.ndarray:
        """[n_heads_total] thresholded attention between standard residues (the denominator)."""
        return self.target_mass.sum(axis=1)

    def head_labels(self) -> list[tuple[int, int]]:
        return [(l, h) for l in range(self.n_layers) for h in range(self.n_heads)]

    @torch.no_grad()
    def update(
        self, maps: list[Tensor] | Tensor, tokens: Tensor, mask: Tensor | None = None
    ) -> None:
        """Add one batch.

        maps: per layer [B, H, L, L] (rows: queries, columns: targets), or one tensor
        [B, n_layers * H, L, L]; tokens: [B, L] token ids; mask: [B, L] True on real tokens.
        """
        attn = torch.cat(list(maps), dim=1) if isinstance(maps, (list, tuple)) else maps
        b, n, l, l2 = attn.shape
        if n != self.n_heads_total or l != l2 or tokens.shape != (b, l):
            raise ValueError(
                f"attention maps {tuple(attn.shape)} do not match {self.n_layers} layers x "
                f"{self.n_heads} heads and tokens {tuple(tokens.shape)}"
            )
        classes = amino_acid_classes(tokens.cpu())
        if mask is not None:
            classes = torch.where(mask.cpu().bool(), classes, torch.full_like(classes, -1))
        dev = attn.device
        # float64 on the accumulation side: sums over 10^5 proteins stay exact enough.
        oh = one_hot_classes(classes).to(dev)  # [B, L, 20]
        a = threshold_attention(attn.double(), self.threshold)
        # Queries restricted to standard residues: zero the rows of excluded queries.
        qmask = (classes >= 0).to(dev, torch.float64)  # [B, L]
        a = a * qmask[:, None, :, None]
        # Vig numerator: sum over queries i, then group targets j by type.
        per_target = a.sum(dim=2)  # [B, n, L]
        self.target_mass += torch.einsum("bnj,bjx->nx", per_target, oh).cpu().numpy()
        # Direct mode: [n, 20 (query type), 20 (target type)].
        pair = torch.einsum("bia,bnij,bjx->nax", oh, a, oh)
        self.pair_mass += pair.cpu().numpy()
        self.residue_counts += oh.sum(dim=(0, 1)).cpu().numpy().round().astype(np.int64)
        self.n_proteins += b

    def merge(self, other: AttentionAggregates) -> AttentionAggregates:
        if (other.n_layers, other.n_heads, other.threshold) != (
            self.n_layers,
            self.n_heads,
            self.threshold,
        ):
            raise ValueError("cannot merge aggregates of different shapes or thresholds")
        self.target_mass += other.target_mass
        self.pair_mass += other.pair_mass
        self.residue_counts += other.residue_counts
        self.n_proteins += other.n_proteins
        return self

    def to_dict(self) -> dict[str, np.ndarray]:
        """Arrays for ``np.savez`` (round trip with :meth:`from_dict`)."""
        return {
            "shape": np.array([self.n_layers, self.n_heads, self.n_proteins]),
            "threshold": np.array(self.threshold),
            "target_mass": self.target_mass,
            "pair_mass": self.pair_mass,
            "residue_counts": self.residue_counts,
        }

    @classmethod
    def from_dict(cls, d: dict[str, np.ndarray]) -> AttentionAggregates:
        n_layers, n_heads, n_proteins = (int(x) for x in d["shape"])
        agg = cls(n_layers, n_heads, float(d["threshold"]))
        agg.target_mass = np.array(d["target_mass"], dtype=np.float64)
        agg.pair_mass = np.array(d["pair_mass"], dtype=np.float64)
        agg.residue_counts = np.array(d["residue_counts"], dtype=np.int64)
        agg.n_proteins = n_proteins
        return agg


def head_shares(
    target_mass: np.ndarray, min_total_weight: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Vig shares: target_mass [n_heads, 20] -> (shares [n_heads, 20], kept [n_heads] bool).

    Rows of excluded heads (total weight < ``min_total_weight`` or zero) are NaN.
    """
    total = target_mass.sum(axis=1)
    kept = (total >= min_total_weight) & (total > 0)
    shares = np.full(target_mass.shape, np.nan)
    shares[kept] = target_mass[kept] / total[kept, None]
    return shares, kept


def vig_similarity(shares: np.ndarray, kept: np.ndarray | None = None) -> np.ndarray:
    """Per-head shares [n_heads, 20] -> 20 x 20 Pearson correlation between amino acids.

    Entry (a, b) correlates the vectors (p_h(a))_h and (p_h(b))_h over the kept heads. An
    amino acid whose share is the same in every head has no defined correlation (NaN); fewer
    than 3 kept heads give an all-NaN matrix (a correlation of 2 points is always +-1).
    """
    s = shares if kept is None else shares[kept]
    s = s[~np.isnan(s).any(axis=1)]
    out = np.full((N_AA, N_AA), np.nan)
    if s.shape[0] < 3:
        return out
    centred = s - s.mean(axis=0)
    norm = np.sqrt((centred**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (centred.T @ centred) / np.outer(norm, norm)
    zero = norm == 0
    out[zero, :] = np.nan
    out[:, zero] = np.nan
    return np.clip(out, -1.0, 1.0)


def direct_ratio(pair_mass: np.ndarray, log: bool = False, pseudocount: float = 0.0) -> np.ndarray:
    """Observed / expected attention between types: pair_mass [..., 20, 20] -> same shape.

    expected[a, b] = row_a * col_b / total (independence of query and target type given the
    marginals). ``pseudocount`` is added to every observed cell first (additive smoothing, in
    units of attention weight: 1 = one query's whole attention), so sparse heads give finite
    log-ratios; it is negligible when cells hold hundreds of units, as with 800 proteins.
    Cells with zero expectation are NaN; ``log`` gives log2 (zero observed -> -inf).
    """
    o = np.asarray(pair_mass, dtype=np.float64) + pseudocount
    total = o.sum(axis=(-2, -1), keepdims=True)
    expected = o.sum(axis=-1, keepdims=True) * o.sum(axis=-2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(expected > 0, o * total / expected, np.nan)
        if log:
            ratio = np.log2(ratio)
    return ratio


def reorder(matrix: np.ndarray, order: str = GROUPED_ORDER) -> np.ndarray:
    """A 20 x 20 matrix in alphabetical order -> the same matrix in ``order`` (rows and cols)."""
    idx = [AMINO_ACIDS.index(a) for a in order]
    return np.asarray(matrix)[np.ix_(idx, idx)]
