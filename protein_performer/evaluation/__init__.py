"""Evaluation of trained protein LMs: token-weighted perplexity and accuracy, sliding
windows for long proteins, the unigram (empirical) baseline, and the paper's table."""

from protein_performer.evaluation.accumulator import PerplexityAccumulator
from protein_performer.evaluation.checkpoint_eval import CheckpointEvaluation, evaluate_checkpoint
from protein_performer.evaluation.perplexity import (
    EvalOptions,
    EvaluationInputError,
    evaluate_source,
)
from protein_performer.evaluation.tables import metrics_table
from protein_performer.evaluation.unigram import (
    baseline_log_probs,
    token_counts,
    unigram_log_probs,
    unigram_residue_metrics,
)
from protein_performer.runner.windows import centered_windows, sliding_windows

__all__ = [
    "CheckpointEvaluation",
    "EvalOptions",
    "EvaluationInputError",
    "PerplexityAccumulator",
    "baseline_log_probs",
    "centered_windows",
    "evaluate_checkpoint",
    "evaluate_source",
    "metrics_table",
    "sliding_windows",
    "token_counts",
    "unigram_log_probs",
    "unigram_residue_metrics",
]
