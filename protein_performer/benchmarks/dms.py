"""Task ``dms``: zero-shot variant effects on deep mutational scans (ProteinGym's first test).

For each model and each assay of ``data_dir`` (:func:`~.dms_data.load_assays`), every
variant is scored by the model (:mod:`.variant_scoring`: log-likelihood ratio for a causal
LM, masked marginal for a masked LM) and, on the same rows, by the baselines it must beat:
``blosum62`` and ``unigram`` (:mod:`.dms_baselines`) and ``random_init`` (the same config
untrained, seeded: what the architecture gives before learning). Writes into ``out_dir``:

- ``<model>/<assay>.csv``: mutant, n_mutations, measured, one column per predictor, windows,
  strategy;
- ``summary.csv``: model, assay, variants (``all``; ``singles``/``doubles``/``3+`` apart when
  an assay mixes them), n, predictor, strategy, spearman, ci_low, ci_high (bootstrap),
  ndcg, n_boot (:mod:`.ranking`);
- ``spearman.png``/``.pdf``: rho with its CI per assay and predictor;
- ``<model>/heatmap_<name>.csv`` and ``.png``: the model's score of all 19 x L single
  mutants of each wild type in ``wild_types`` (sequences without measurements).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from protein_performer.analysis.control import random_init_like
from protein_performer.analysis.figures import save
from protein_performer.benchmarks.dms_baselines import blosum62_scores, unigram_scores
from protein_performer.benchmarks.dms_data import Assay, every_single_mutant, load_assays
from protein_performer.benchmarks.ranking import rank_metrics
from protein_performer.benchmarks.task_types import Task, TaskError, TaskInputs
from protein_performer.benchmarks.variant_scoring import STRATEGIES, score_assay
from protein_performer.data.alphabet import STANDARD_AMINO_ACIDS
from protein_performer.evaluation.unigram import baseline_log_probs
from protein_performer.progress import Progress
from protein_performer.runner import Engine, load_model

log = logging.getLogger(__name__)

BASELINES = ("blosum62", "unigram", "random_init")
SUBSETS = {1: "singles", 2: "doubles"}  # more mutations: "3+"


@dataclass
class DmsOptions:
    """``assays``: names to run (ProteinGym DMS_id or mavenn assay names; None: all);
    ``max_variants``: a seeded sample per assay (None: every variant); ``baselines``: any of
    :data:`BASELINES`; ``n_boot``: bootstrap resamples for the CI (fewer on big assays, see
    :func:`~.ranking.boot_count`); ``wild_types``: name -> sequence for single-mutant heatmaps."""

    assays: list[str] | None = None
    max_variants: int | None = None
    seed: int = 0
    n_boot: int = 1000
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    wild_types: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self.wild_types = dict(self.wild_types or {})
        bad = sorted(set(self.baselines) - set(BASELINES))
        if bad:
            raise TaskError(f"dms.baselines: unknown {bad[0]!r}; allowed: {list(BASELINES)}")
        if self.max_variants is not None and self.max_variants < 1:
            raise TaskError(f"dms.max_variants must be >= 1 or null, got {self.max_variants}")
        if self.n_boot < 0:
            raise TaskError(f"dms.n_boot must be >= 0, got {self.n_boot}")


def sample_rows(assay: Assay, max_variants: int | None, seed: int) -> Assay:
    """At most ``max_variants`` variants, drawn without replacement with ``seed`` (kept in
    their file order), as pandas ``DataFrame.sample(n, random_state=seed)`` draws them."""
    if max_variants is None or len(assay) <= max_variants:
        return assay
    rows = pd.RangeIndex(len(assay)).to_series().sample(max_variants, random_state=seed)
    return assay.subset(np.sort(rows.to_numpy()))


def subsets(assay: Assay) -> dict[str, np.ndarray]:
    """``all`` rows, and each mutation count apart when the assay mixes them."""
    n_mut = assay.n_mutations
    out = {"all": np.arange(len(assay))}
    counts = np.unique(np.minimum(n_mut, 3))
    if len(counts) > 1:
        for c in counts:
            out[SUBSETS.get(int(c), "3+")] = np.nonzero(np.minimum(n_mut, 3) == c)[0]
    return out


def _summary_rows(
    label: str, assay: Assay, scores: dict[str, np.ndarray], strategy: str, opts: DmsOptions
) -> list[dict]:
    rows = []
    for name, idx in subsets(assay).items():
        metrics = rank_metrics(
            {k: v[idx] for k, v in scores.items()},
            assay.measured[idx],
            n_boot=opts.n_boot,
            seed=opts.seed,
        )
        for predictor, m in metrics.items():
            rows.append(
                {
                    "model": label,
                    "assay": assay.name,
                    "variants": name,
                    "n": m.n,
                    "predictor": predictor,
                    "strategy": strategy if predictor in ("model", "random_init") else predictor,
                    "spearman": m.spearman,
                    "ci_low": m.ci_low,
                    "ci_high": m.ci_high,
                    "ndcg": m.ndcg,
                    "n_boot": m.n_boot,
                }
            )
    return rows


def _scores_for(engines: dict, loaded, assay: Assay, opts: DmsOptions, inputs: TaskInputs):
    """predictor -> float64 [N] scores, and the model's windows per variant."""
    objective, max_length = loaded.objective.name, loaded.model_cfg.max_length
    bar = Progress(len(assay), f"{assay.name}", unit="variant", enabled=inputs.progress)
    model_scores, windows = score_assay(
        engines["model"], objective, assay, max_length, budget=inputs.budget, progress=bar
    )
    bar.close()
    scores = {"model": model_scores}
    if "blosum62" in opts.baselines:
        scores["blosum62"] = blosum62_scores(assay)
    if "unigram" in opts.baselines:
        lp, _ = baseline_log_probs(loaded.residue_frequencies, include_eos=False)
        scores["unigram"] = unigram_scores(assay, lp)
    if "random_init" in opts.baselines:
        scores["random_init"], _ = score_assay(
            engines["random_init"], objective, assay, max_length, budget=inputs.budget
        )
    return scores, windows


def _write_assay_csv(path: Path, assay: Assay, scores, windows, strategy: str) -> None:
    table = pd.DataFrame(
        {
            "mutant": assay.mutant_strings(),
            "n_mutations": assay.n_mutations,
            "measured": assay.measured,
            **scores,
            "windows": windows,
        }
    )
    table["strategy"] = strategy
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)


def heatmap_table(assay: Assay, scores: np.ndarray) -> pd.DataFrame:
    """20 x L scores of every single mutant (rows: residues, columns: numbered wild-type
    positions; the wild-type cell of each column is NaN: 19 substitutions per position)."""
    wt = assay.wild_type
    cols = [f"{w}{i + assay.first_position}" for i, w in enumerate(wt)]
    values = np.full((len(STANDARD_AMINO_ACIDS), len(wt)), np.nan)
    row_of = {a: i for i, a in enumerate(STANDARD_AMINO_ACIDS)}
    for site, alt, s in zip(assay.sites[:, 0], assay.alts[:, 0], scores):
        values[row_of[alt], site] = s
    return pd.DataFrame(values, index=list(STANDARD_AMINO_ACIDS), columns=cols)


def plot_heatmap(table: pd.DataFrame, title: str, stem: Path) -> list[str]:
    width = min(max(4.0, 0.18 * table.shape[1] + 2), 40.0)
    fig = Figure(figsize=(width, 4.2))
    ax = fig.subplots()
    lim = np.nanmax(np.abs(table.to_numpy())) or 1.0
    im = ax.imshow(table.to_numpy(), cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_yticks(range(20), table.index, fontsize=6)
    step = max(1, table.shape[1] // 60)
    ax.set_xticks(range(0, table.shape[1], step), table.columns[::step], rotation=90, fontsize=6)
    fig.colorbar(im, ax=ax, fraction=0.03, label="score (higher: model prefers the mutant)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save(fig, stem)


def plot_summary(summary: pd.DataFrame, stem: Path) -> list[str]:
    """Spearman's rho with its bootstrap CI per assay subset, one bar per predictor."""
    models = list(dict.fromkeys(summary["model"]))
    fig = Figure(figsize=(8, 3.2 * len(models)))
    axes = fig.subplots(len(models), 1, squeeze=False)
    for ax, label in zip(axes[:, 0], models):
        part = summary[summary["model"] == label]
        part = part.assign(group=part["assay"] + " " + part["variants"])
        groups = list(dict.fromkeys(part["group"]))
        predictors = list(dict.fromkeys(part["predictor"]))
        width = 0.8 / len(predictors)
        for j, pred in enumerate(predictors):
            rows = part[part["predictor"] == pred].set_index("group").reindex(groups)
            x = np.arange(len(groups)) + (j - (len(predictors) - 1) / 2) * width
            err = np.vstack([rows["spearman"] - rows["ci_low"], rows["ci_high"] - rows["spearman"]])
            ax.bar(x, rows["spearman"], width, yerr=np.abs(err), capsize=2, label=pred)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(range(len(groups)), groups, rotation=25, ha="right", fontsize=7)
        ax.set_ylabel("Spearman rho")
        ax.set_title(f"{label}: variant effects, rho with 95% bootstrap CI", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save(fig, stem)


def run_dms(inputs: TaskInputs, opts: DmsOptions) -> pd.DataFrame:
    """Score every model on every assay (and heatmap wild type); returns the summary table."""
    assays: list[Assay] = []
    if inputs.data_dir is not None:
        assays = [
            sample_rows(a, opts.max_variants, opts.seed)
            for a in load_assays(inputs.data_dir, opts.assays)
        ]
    heatmaps = [every_single_mutant(name, seq) for name, seq in opts.wild_types.items()]
    if not assays and not heatmaps:
        raise TaskError("dms: nothing to score: give data_dir= (DMS assays) or dms.wild_types")
    out = inputs.out_dir
    rows: list[dict] = []
    for spec in inputs.models:
        loaded = load_model(spec.path)
        engines = {"model": Engine(loaded.model, inputs.device)}
        if "random_init" in opts.baselines:
            engines["random_init"] = Engine(
                random_init_like(loaded.model, opts.seed), inputs.device
            )
        strategy = STRATEGIES[loaded.objective.name]
        for assay in assays:
            t0 = time.perf_counter()
            scores, windows = _scores_for(engines, loaded, assay, opts, inputs)
            seconds = time.perf_counter() - t0
            log.info(
                "%s on %s: %d variants in %.1f s (%.0f variants/s, model + random_init)",
                spec.label,
                assay.name,
                len(assay),
                seconds,
                len(assay) / max(seconds, 1e-9),
            )
            _write_assay_csv(
                out / spec.label / f"{assay.name}.csv", assay, scores, windows, strategy
            )
            rows += _summary_rows(spec.label, assay, scores, strategy, opts)
        for assay in heatmaps:
            scores, _ = score_assay(
                engines["model"],
                loaded.objective.name,
                assay,
                loaded.model_cfg.max_length,
                budget=inputs.budget,
            )
            table = heatmap_table(assay, scores)
            stem = out / spec.label / f"heatmap_{assay.name}"
            stem.parent.mkdir(parents=True, exist_ok=True)
            # the strategy names the index column: every output file says how it was scored
            table.to_csv(stem.with_suffix(".csv"), index_label=f"mutant residue ({strategy})")
            plot_heatmap(table, f"{spec.label}: single mutants of {assay.name} ({strategy})", stem)
    summary = pd.DataFrame(rows)
    if len(summary):
        plot_summary(summary, out / "spearman")
    return summary


TASK = Task("dms", DmsOptions, run_dms)
