"""Aggregates -> Vig and direct matrices compared with substitution matrices: one model's
:class:`AnalysisResult` (overall, per layer, per head, the best head)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from protein_performer.analysis.aggregate import (
    AMINO_ACIDS,
    AttentionAggregates,
    direct_ratio,
    head_shares,
    vig_similarity,
)
from protein_performer.analysis.options import AnalysisOptions
from protein_performer.analysis.substitution import compare_matrices, load_matrix
from protein_performer.jsonsafe import finite

MIN_PAIRS_BEST_HEAD = 95


@dataclass
class AnalysisResult:
    """Matrices and statistics of one model (see :func:`summarise`)."""

    n_layers: int
    n_heads: int
    options: dict[str, Any]
    counts: dict[str, int]
    shares: np.ndarray  # [n_heads_total, 20] Vig shares (NaN rows: excluded heads)
    kept: np.ndarray  # [n_heads_total] bool
    total_weight: np.ndarray  # [n_heads_total]
    vig: np.ndarray  # [20, 20] Pearson similarity of amino acids over kept heads
    direct: np.ndarray  # [20, 20] observed / expected over all kept heads (log2 if direct_log)
    head_direct: np.ndarray  # [n_heads_total, 20, 20]
    references: dict[str, np.ndarray]
    overall: dict[str, dict[str, dict[str, float]]]  # mode -> matrix name -> statistics
    per_layer: list[dict[str, Any]]
    per_head: list[dict[str, Any]]
    best_head: dict[str, Any] | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def r(self) -> float:
        """The headline number: Vig similarity vs the reference, Pearson, off-diagonal."""
        return float(self.overall["vig"][self.options["reference"]]["pearson"])

    def overall_table(self):
        """pandas DataFrame: one row per (mode, matrix), the comparison statistics as columns."""
        import pandas as pd

        rows = [
            {"mode": mode, "matrix": name, **stats}
            for mode, by_matrix in self.overall.items()
            for name, stats in by_matrix.items()
        ]
        return pd.DataFrame(rows).set_index(["mode", "matrix"])

    def warnings(self) -> list[str]:
        """Reasons the headline number may be missing or weak (printed by the CLI)."""
        out = []
        kept, total = int(self.kept.sum()), int(self.kept.size)
        if kept < 3:
            out.append(
                f"only {kept} of {total} heads kept (a head needs attention weights >= "
                f"threshold {self.options['threshold']} summing to >= min_total_weight "
                f"{self.options['min_total_weight']}): the Vig similarity needs >= 3 heads; "
                f"analyse more proteins (n_proteins), or lower threshold / min_total_weight"
            )
        return out

    def json_dict(self) -> dict[str, Any]:
        ref = self.options["reference"]
        excluded = [
            [int(i // self.n_heads), int(i % self.n_heads)] for i in np.flatnonzero(~self.kept)
        ]
        return finite(
            {
                "method": (
                    "Vig et al. 2020: per-head share of thresholded attention onto each "
                    "target amino acid; amino-acid similarity = Pearson correlation of "
                    "share vectors over kept heads; compared over amino-acid pairs. "
                    "direct: observed/expected attention between residue types "
                    "(independence given marginals), symmetrised. permutation_p: one-sided "
                    "Mantel test (amino-acid labels permuted jointly on rows and columns)."
                ),
                "reference": ref,
                "pearson": self.r,
                "spearman": self.overall["vig"][ref]["spearman"],
                "permutation_p": self.overall["vig"][ref]["permutation_p"],
                "layers": self.n_layers,
                "heads_per_layer": self.n_heads,
                "heads": {
                    "total": int(self.kept.size),
                    "kept": int(self.kept.sum()),
                    "excluded": excluded,
                },
                "warnings": self.warnings(),
                **self.counts,
                "options": self.options,
                "overall": self.overall,
                "per_layer": self.per_layer,
                "best_head": self.best_head,
                **self.extra,
            }
        )


def summarise(
    agg: AttentionAggregates,
    options: AnalysisOptions | None = None,
    counts: dict[str, int] | None = None,
) -> AnalysisResult:
    """Aggregates -> Vig and direct matrices, compared with every requested matrix."""
    opts = options or AnalysisOptions()
    refs = {name: load_matrix(name) for name in opts.matrices}
    ref = refs[opts.reference]
    cmp = lambda m, r: compare_matrices(m, r, opts.n_permutations, opts.seed)  # noqa: E731
    shares, kept = head_shares(agg.target_mass, opts.min_total_weight)
    vig = vig_similarity(shares, kept)
    pc = opts.direct_pseudocount
    head_direct = direct_ratio(agg.pair_mass, opts.direct_log, pc)
    direct = direct_ratio(agg.pair_mass[kept].sum(axis=0), opts.direct_log, pc)
    overall = {
        "vig": {n: cmp(vig, r) for n, r in refs.items()},
        "direct": {n: cmp(direct, r) for n, r in refs.items()},
    }

    per_layer = []
    for layer in range(agg.n_layers):
        sl = slice(layer * agg.n_heads, (layer + 1) * agg.n_heads)
        k = kept[sl]
        entry: dict[str, Any] = {"layer": layer, "kept_heads": int(k.sum())}
        entry["vig"] = cmp(vig_similarity(shares[sl], k), ref)
        entry["direct"] = cmp(
            direct_ratio(agg.pair_mass[sl][k].sum(axis=0), opts.direct_log, pc), ref
        )
        per_layer.append(entry)

    per_head = []
    for i, (layer, head) in enumerate(agg.head_labels()):
        row: dict[str, Any] = {
            "layer": layer,
            "head": head,
            "total_weight": float(agg.total_weight[i]),
            "kept": bool(kept[i]),
        }
        stats = cmp(head_direct[i], ref)
        for key in (
            "pearson",
            "spearman",
            "permutation_p",
            "pearson_diag",
            "spearman_diag",
            "n_pairs",
        ):
            row[f"direct_{key}"] = stats[key]
        row.update({f"share_{a}": shares[i, j] for j, a in enumerate(AMINO_ACIDS)})
        per_head.append(row)
    # the best head is chosen among kept heads whose direct matrix covers at least half of
    # the 190 pairs (a correlation over a handful of pairs is noise)
    candidates = [
        r
        for r in per_head
        if r["kept"]
        and np.isfinite(r["direct_pearson"])
        and r["direct_n_pairs"] >= MIN_PAIRS_BEST_HEAD
    ]
    best = max(candidates, key=lambda r: r["direct_pearson"]) if candidates else None
    best_head = None
    if best is not None:
        best_head = {
            k: best[k]
            for k in (
                "layer",
                "head",
                "total_weight",
                "direct_n_pairs",
                "direct_pearson",
                "direct_spearman",
                "direct_permutation_p",
                "direct_pearson_diag",
                "direct_spearman_diag",
            )
        }
    opts_dict = {
        k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in asdict(opts).items()
    }
    return AnalysisResult(
        n_layers=agg.n_layers,
        n_heads=agg.n_heads,
        options=opts_dict,
        counts=dict(
            counts or {"n_proteins": agg.n_proteins, "n_residues": int(agg.residue_counts.sum())}
        ),
        shares=shares,
        kept=kept,
        total_weight=agg.total_weight,
        vig=vig,
        direct=direct,
        head_direct=head_direct,
        references=refs,
        overall=overall,
        per_layer=per_layer,
        per_head=per_head,
        best_head=best_head,
    )
