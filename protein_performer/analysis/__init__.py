"""What attention learned about amino acids: attention -> 20 x 20 matrices (Vig et al. 2020),
compared with substitution matrices (BLOSUM62, ...), figures, sweep comparison.

    from protein_performer.analysis import AnalysisOptions, analyze_model
    result, files = analyze_model(model, proteins, out_dir, AnalysisOptions(n_proteins=800))
    result.r            # Pearson r of the attention similarity with BLOSUM62 (190 pairs)

Modules: ``aggregate`` (the method, pure numpy/torch), ``substitution`` (matrices and
statistics), ``run`` (model + proteins -> results and files, through ``collect`` (the model
pass), ``summary`` (statistics), ``outputs``; ``inputs`` and ``options``), ``figures``
(matplotlib, Agg), ``compare`` (several models side by side). Figures are imported on use only.
"""

from protein_performer.analysis.aggregate import (
    AA_GROUPS,
    AMINO_ACIDS,
    GROUPED_ORDER,
    AttentionAggregates,
    direct_ratio,
    head_shares,
    vig_similarity,
)
from protein_performer.analysis.collect import aggregate_attention
from protein_performer.analysis.options import AnalysisInputError, AnalysisOptions
from protein_performer.analysis.outputs import write_outputs
from protein_performer.analysis.run import analyze_model
from protein_performer.analysis.substitution import (
    UnknownMatrixError,
    compare_matrices,
    load_matrix,
    mantel_p_value,
)
from protein_performer.analysis.summary import AnalysisResult, summarise

__all__ = [
    "AA_GROUPS",
    "AMINO_ACIDS",
    "GROUPED_ORDER",
    "AttentionAggregates",
    "direct_ratio",
    "head_shares",
    "vig_similarity",
    "AnalysisInputError",
    "AnalysisOptions",
    "AnalysisResult",
    "aggregate_attention",
    "analyze_model",
    "summarise",
    "write_outputs",
    "UnknownMatrixError",
    "compare_matrices",
    "load_matrix",
    "mantel_p_value",
]
