"""A study of a training sweep in one report: perplexity against the unigram baseline with
confidence intervals, curves, attention vs BLOSUM beside the random-init null, and the
FAVOR+ approximation error on a trained model's own queries and keys.

    report = run_study("multirun/train/<date>/<time>", StudyOptions(splits={...}))
    # -> <sweep>/study/report.md + study.json + tables (CSV) + figures (PNG, PDF)

Definitions:
- **ratio**: model perplexity / unigram perplexity on the same tokens (unigram: the training
  corpus' residue frequencies stored in the checkpoint). < 1: the model beats the baseline.
- **95% CI**: percentile bootstrap over proteins (``n_bootstrap`` resamples of the split's
  proteins, perplexity = exp(sum NLL / sum tokens) of each resample), divided by the split's
  unigram perplexity. Masked models: the mean over ``n_maskings`` fixed maskings, every selected
  residue replaced by ``<mask>`` (the all-``<mask>`` number; no scored position sees its answer).
- **BLOSUM**: :mod:`protein_performer.analysis` (Vig et al. similarity vs BLOSUM62, Mantel
  permutation p), for each trained model and for the same config at random init
  (:mod:`protein_performer.analysis.control`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from protein_performer.analysis.control import analyze_with_control
from protein_performer.analysis.favor_error import errors_on_source
from protein_performer.analysis.options import AnalysisOptions
from protein_performer.benchmarks.dms import DmsOptions, run_dms
from protein_performer.benchmarks.tasks import ModelSpec, TaskInputs, get_task
from protein_performer.evaluation.checkpoint_eval import evaluate_checkpoint
from protein_performer.evaluation.perplexity import EvalOptions
from protein_performer.filenames import safe_name
from protein_performer.jsonsafe import finite
from protein_performer.model.checkpoint import read_checkpoint
from protein_performer.runner import load_model, open_input
from protein_performer.study.biology import biology_section, headline, run_biology
from protein_performer.training.budget import RECORD
from protein_performer.training.sweep_summary import find_runs, read_metrics, run_overrides

log = logging.getLogger(__name__)


@dataclass
class StudyOptions:
    """What the study evaluates (conf/study.yaml documents each field)."""

    splits: dict[str, str] = field(default_factory=dict)  # name -> FASTA / store
    n_maskings: int = 3
    max_proteins: int | None = None  # per split; None = all
    n_bootstrap: int = 1000
    analysis_fasta: str | None = None  # None = the first split
    analysis_proteins: int = 400
    threshold: float = 0.0
    min_total_weight: float = 0.0
    n_permutations: int = 1000
    favor_error_proteins: int = 8
    favor_error_features: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    # variant effects (task dms): benchmark data (protein-performer-data fetch-benchmarks);
    # None = no DMS section
    dms_data_dir: str | None = None
    dms_assays: list[str] | None = None
    dms_max_variants: int | None = 5000  # a seeded sample per assay (None: every variant)
    # contacts and probes (the Biology table): the same fetched folder; None = no section
    bio_data_dir: str | None = None
    bio_tasks: tuple[str, ...] = ("contacts", "ss", "location", "disorder")

    def __post_init__(self) -> None:
        if not self.splits:
            raise ValueError(
                "splits must name at least one evaluation set, e.g. "
                "{valid: data/sample/valid.fasta.gz}"
            )
        for name in ("n_maskings", "n_bootstrap", "analysis_proteins"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        self.favor_error_features = tuple(int(m) for m in self.favor_error_features)
        self.bio_tasks = tuple(self.bio_tasks)
        for name in self.bio_tasks:
            get_task(name)  # an unknown name fails here, naming the allowed ones


@dataclass
class StudyRun:
    """One trained model of the sweep."""

    label: str
    run_dir: Path
    checkpoint: Path


def find_study_runs(sweep_dir: str | Path) -> list[StudyRun]:
    """Every job of the sweep with a ``checkpoints/last.ckpt``, labelled by what varies."""

    runs = [r for r in find_runs(sweep_dir) if (r / "checkpoints" / "last.ckpt").is_file()]
    if not runs:
        raise FileNotFoundError(
            f"sweep_dir: no trained runs in {sweep_dir} (no job directory holds "
            f"checkpoints/last.ckpt): give the multirun directory of a finished training sweep"
        )
    overrides = {r: run_overrides(r) for r in runs}
    keys = sorted({k for o in overrides.values() for k in o})
    varying = [k for k in keys if len({o.get(k) for o in overrides.values()}) > 1]
    out = []
    for r in runs:
        label = " ".join(f"{k.split('.')[-1]}={overrides[r].get(k, '')}" for k in varying)
        out.append(StudyRun(label or r.name, r, r / "checkpoints" / "last.ckpt"))
    return out


def bootstrap_perplexity(
    nll: np.ndarray, n_tokens: np.ndarray, n: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of exp(sum nll / sum tokens), resampling proteins; ``nll``
    [proteins]: each protein's summed NLL, ``n_tokens``: its scored tokens."""
    nll, n_tokens = np.asarray(nll, float), np.asarray(n_tokens, float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(nll), size=(n, len(nll)))
    ppl = np.exp(nll[idx].sum(1) / np.maximum(n_tokens[idx].sum(1), 1))
    a = (1 - level) / 2
    return float(np.quantile(ppl, a)), float(np.quantile(ppl, 1 - a))


def evaluate_runs(runs: list[StudyRun], opts: StudyOptions, out: Path) -> pd.DataFrame:
    """One row per (model, split): perplexity, unigram, ratio and their bootstrap CIs."""

    eval_opts = EvalOptions(
        n_maskings=opts.n_maskings,
        seed=opts.seed,
        device=opts.device,
        progress=opts.progress,
        max_proteins=opts.max_proteins,
    )
    rows = []
    for run in runs:
        loaded = load_model(run.checkpoint)
        result = evaluate_checkpoint(
            loaded,
            dict(opts.splits),
            options=eval_opts,
            per_protein_dir=out / "per_protein" / safe_name(run.label, "model", 80),
            checkpoint=str(run.checkpoint),
        )
        for split, m in result.files.items():
            per = pd.read_csv(m["per_protein_csv"])  # nll: mean per scored token
            total = (per["nll"] * per["n_tokens"]).fillna(0.0)  # nothing scored: empty cells
            lo, hi = bootstrap_perplexity(total, per["n_tokens"], opts.n_bootstrap, opts.seed)
            uni = float(m["unigram_perplexity"])
            rows.append(
                {
                    "model": run.label,
                    "attention": str(loaded.model_cfg.attention.kind),
                    "objective": loaded.objective.name,
                    "split": split,
                    "perplexity": m["perplexity"],
                    "ppl_lo": lo,
                    "ppl_hi": hi,
                    "perplexity_std_maskings": m.get("perplexity_std"),
                    "unigram": uni,
                    "ratio": m["perplexity"] / uni,
                    "ratio_lo": lo / uni,
                    "ratio_hi": hi / uni,
                    "accuracy": m.get("accuracy"),
                    "n_proteins": m.get("n_sequences"),
                    "n_tokens": m.get("n_tokens"),
                }
            )
    return pd.DataFrame(rows)


def blosum_with_controls(runs: list[StudyRun], opts: StudyOptions, out: Path) -> pd.DataFrame:
    """Per model: attention vs BLOSUM62 of the trained model and of its random-init twin."""

    source = open_input(opts.analysis_fasta or next(iter(opts.splits.values())))
    a_opts = AnalysisOptions(
        n_proteins=opts.analysis_proteins,
        threshold=opts.threshold,
        min_total_weight=opts.min_total_weight,
        n_permutations=opts.n_permutations,
        seed=opts.seed,
        device=opts.device,
        progress=opts.progress,
    )
    rows = []
    for run in runs:
        _, _, summary, _ = analyze_with_control(
            load_model(run.checkpoint).model,
            source,
            out / "blosum" / safe_name(run.label, "model", 80),
            a_opts,
        )
        rows.append(
            {
                "model": run.label,
                **summary["vig"],
                **{f"direct_{k}": v for k, v in summary["direct"].items()},
            }
        )
    return pd.DataFrame(rows)


def favor_error_table(run: StudyRun, opts: StudyOptions) -> pd.DataFrame:
    """FAVOR+ vs exact softmax on ``run``'s own q, k (:mod:`analysis.favor_error`)."""

    source = open_input(opts.analysis_fasta or next(iter(opts.splits.values())))
    return errors_on_source(
        load_model(run.checkpoint).model,
        source,
        opts.favor_error_proteins,
        opts.favor_error_features,
        seed=opts.seed,
    )


def training_table(runs: list[StudyRun]) -> pd.DataFrame:
    """Steps each model trained (its checkpoint's), and with ``budget.minutes`` the budget, the
    training minutes, the probed rate and where the step count came from (its time_budget.json:
    ``probe``, ``shared`` = the sweep's first decision, or ``checkpoint`` = a resumed run)."""
    rows = []
    for run in runs:
        # mmap: only the step is read, not the weights (the evaluation loads those)
        state = read_checkpoint(run.checkpoint, mmap=True)
        path = run.run_dir / RECORD
        record = json.loads(path.read_text()) if path.is_file() else {}
        rows.append(
            {
                "model": run.label,
                "steps": int(state.get("global_step", 0)),
                "budget_minutes": record.get("minutes"),
                "train_minutes": record.get("train_minutes"),
                "steps_per_s": record.get("steps_per_s"),
                "steps_from": record.get("source"),
            }
        )
    return pd.DataFrame(rows)


def run_study(
    sweep_dir: str | Path, opts: StudyOptions, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Evaluate, analyse and report every trained run of ``sweep_dir``; returns study.json."""
    # matplotlib loads only when the figures are drawn
    from protein_performer.study import figures

    sweep = Path(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep / "study"
    out.mkdir(parents=True, exist_ok=True)
    runs = find_study_runs(sweep)
    log.info("study of %d runs in %s", len(runs), sweep)
    perplexity = evaluate_runs(runs, opts, out)
    perplexity.to_csv(out / "perplexity.csv", index=False)
    training = training_table(runs)
    training.to_csv(out / "training.csv", index=False)
    blosum = blosum_with_controls(runs, opts, out)
    blosum.to_csv(out / "blosum_vs_control.csv", index=False)
    # the diagnostic needs one model's q, k: the exact one when the sweep has it
    kinds = dict(zip(perplexity["model"], perplexity["attention"]))
    probe = next((r for r in runs if kinds[r.label] == "exact"), runs[0])
    favor = favor_error_table(probe, opts)
    favor.to_csv(out / "favor_error.csv", index=False)
    curves = {r.label: read_metrics(r.run_dir) for r in runs}
    dms = dms_table(runs, opts, out)
    bio, bio_figure = biology_table(runs, opts, out)
    files = {
        "ratios": figures.plot_ratios(perplexity, out / "perplexity_ratio"),
        "curves": figures.plot_curves(curves, perplexity, out / "valid_curves"),
        "blosum": figures.plot_blosum_controls(blosum, out / "blosum_vs_control"),
        "favor_error": figures.plot_favor_error(favor, out / "favor_error", probe.label),
    }
    study = {
        "sweep": str(sweep),
        "runs": [
            {"label": r.label, "checkpoint": str(r.checkpoint), "attention": kinds[r.label]}
            for r in runs
        ],
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(opts).items()},
        "training": training.to_dict(orient="records"),
        "perplexity": perplexity.to_dict(orient="records"),
        "blosum": blosum.to_dict(orient="records"),
        "favor_error_model": probe.label,
        "favor_error": favor.groupby(["feature_type", "nb_features"])["output_rel_error"]
        .mean()
        .reset_index()
        .to_dict(orient="records"),
        "figures": files,
    }
    if dms is not None:
        dms.to_csv(out / "dms.csv", index=False)
        study["dms"] = dms.to_dict(orient="records")
    if bio is not None:
        bio.to_csv(out / "biology.csv", index=False)
        study["biology"] = bio.to_dict(orient="records")
    (out / "study.json").write_text(json.dumps(finite(study), indent=2, default=str) + "\n")
    report = render_report(study, perplexity, blosum, favor, training)
    sections = dms_section(dms) + biology_section(bio, bio_figure)
    (out / "report.md").write_text(report + "\n".join(sections))
    log.info("study report: %s", out / "report.md")
    return study


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
        f"## FAVOR+ approximation error on the trained model's own q, k ({study['favor_error_model']})",
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


def dms_table(runs: list[StudyRun], opts: StudyOptions, out: Path) -> pd.DataFrame | None:
    """Task dms on every run (``opts.dms_data_dir``), or None when no DMS data is given."""
    if not opts.dms_data_dir:
        return None
    inputs = TaskInputs(
        [ModelSpec(r.label, r.checkpoint) for r in runs],
        Path(opts.dms_data_dir),
        out / "dms",
        opts.device,
        progress=opts.progress,
    )
    dms_opts = DmsOptions(
        assays=opts.dms_assays, max_variants=opts.dms_max_variants, seed=opts.seed
    )
    return run_dms(inputs, dms_opts)


def biology_table(
    runs: list[StudyRun], opts: StudyOptions, out: Path
) -> tuple[pd.DataFrame | None, str | None]:
    """The Biology headline table (``opts.bio_data_dir``) and the first run's contact-map
    figure (relative to ``out``), or (None, None) when no data is given."""
    if not opts.bio_data_dir:
        return None, None
    models = [(r.label, r.checkpoint) for r in runs]
    summaries = run_biology(
        models,
        Path(opts.bio_data_dir),
        list(opts.bio_tasks),
        out / "biology",
        opts.device,
        opts.seed,
    )
    figure = Path("biology") / "contacts" / runs[0].label / "contact_maps.png"
    return headline(summaries), str(figure) if (out / figure).is_file() else None


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
