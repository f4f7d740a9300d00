"""report.md of a study: the tables and figures, with what each number means."""

from __future__ import annotations

from typing import Any

import pandas as pd


def render_report(
    study: dict[str, Any],
    perplexity: pd.DataFrame,
    blosum: pd.DataFrame,
    favor: pd.DataFrame,
    training: pd.DataFrame | None = None,
) -> str:
    """report.md: the tables and the figures, with what each number means."""
    ppl = perplexity.assign(
        perplexity=[
            f"{p:.2f} [{lo:.2f}, {hi:.2f}]"
            for p, lo, hi in zip(perplexity.perplexity, perplexity.ppl_lo, perplexity.ppl_hi)
        ],
        ratio=[
            f"{r:.3f} [{lo:.3f}, {hi:.3f}]"
            for r, lo, hi in zip(perplexity.ratio, perplexity.ratio_lo, perplexity.ratio_hi)
        ],
        unigram=[f"{u:.2f}" for u in perplexity.unigram],
        accuracy=[f"{a:.3f}" for a in perplexity.accuracy],
    )[["model", "objective", "split", "perplexity", "unigram", "ratio", "accuracy", "n_proteins"]]
    bl = blosum[
        [
            "model",
            "trained_pearson",
            "trained_permutation_p",
            "control_pearson",
            "control_permutation_p",
            "difference",
            "beats_control",
        ]
    ]
    fe = (
        favor.groupby(["feature_type", "nb_features"])["output_rel_error"]
        .mean()
        .unstack("feature_type")
    )
    best = perplexity.sort_values("ratio").iloc[0]
    lines = [
        f"# Study of `{study['sweep']}`",
        "",
        f"Best model/unigram ratio: **{best.ratio:.3f}** ({best.model}, {best.split}; 95% CI "
        f"[{best.ratio_lo:.3f}, {best.ratio_hi:.3f}]). BLOSUM62 beats the random-init control "
        f"(r above the control's, permutation p < 0.01) for "
        f"{int(blosum.beats_control.sum())} of {len(blosum)} models.",
        "",
        "## Perplexity against the unigram baseline",
        "",
        "Perplexity with its 95% bootstrap CI over proteins; ratio = model / unigram on the same "
        "tokens (< 1 beats the baseline). Masked models: mean of fixed maskings, selected "
        "residues all `<mask>`.",
        "",
        ppl.to_markdown(index=False),
        "",
        "![ratios](perplexity_ratio.png)",
        "",
        "![curves](valid_curves.png)",
        "",
        *_training_section(training),
        "## Attention vs BLOSUM62, beside the same model at random initialisation",
        "",
        "Vig et al. similarity of amino acids over heads vs BLOSUM62 (Pearson r over the 190 "
        "off-diagonal pairs, one-sided Mantel permutation p). The control is the same config "
        "with fresh seeded weights: what the architecture and residue frequencies give "
        "without learning.",
        "",
        bl.to_markdown(index=False, floatfmt=".3g"),
        "",
        "![blosum](blosum_vs_control.png)",
        "",
        "## FAVOR+ approximation error on the trained model's own q, k "
        f"({study['favor_error_model']})",
        "",
        "Mean relative error of the attention output, softmax-kernel FAVOR+ with m features "
        "against exact softmax attention, over layers, heads and feature draws:",
        "",
        fe.to_markdown(floatfmt=".4f"),
        "",
        "![favor error](favor_error.png)",
        "",
    ]
    return "\n".join(lines)


def dms_section(dms: pd.DataFrame | None) -> list[str]:
    """report.md's variant-effect table: each model's rho beside its baselines'."""
    if dms is None or dms.empty:
        return []
    cells = dms.rename(columns={"model": "checkpoint"}).assign(
        rho=[
            f"{r:.3f} [{lo:.3f}, {hi:.3f}]"
            for r, lo, hi in zip(dms.spearman, dms.ci_low, dms.ci_high)
        ]
    )
    keys = ["checkpoint", "assay", "variants", "n"]
    predictors = list(dict.fromkeys(cells["predictor"]))
    table = cells.pivot_table(index=keys, columns="predictor", values="rho", aggfunc="first")
    table = table.reset_index()[[*keys, *predictors]]
    return [
        "## Variant effects on deep mutational scans",
        "",
        "Spearman rho [95% bootstrap CI] between each predictor's score and the measured "
        "fitness, on the same variants: the model (causal: log-likelihood ratio, masked: masked "
        "marginal), the BLOSUM62 substitution score, the unigram log-frequency ratio and the "
        "same config at random initialisation (`dms/summary`, per-variant CSVs in `dms/`).",
        "",
        table.to_markdown(index=False),
        "",
        "![dms](dms/spearman.png)",
        "",
    ]


def _training_section(training: pd.DataFrame | None) -> list[str]:
    if training is None or training.empty:
        return []
    table = training
    if table["budget_minutes"].isna().all():
        table = table[["model", "steps"]]
    return [
        "## Training",
        "",
        "Optimizer steps per model; with `budget.minutes`, the budget, the minutes the training "
        "loop took, the probed rate, and where the step count came from (`probe`: this run's; "
        "`shared`: the sweep's first run's, so that every model trains the same steps).",
        "",
        table.to_markdown(index=False, floatfmt=".3g"),
        "",
    ]
