"""The numbers of a study, one table (DataFrame) per section of the report.

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
from pathlib import Path

import numpy as np
import pandas as pd

from protein_performer.analysis.control import analyze_with_control
from protein_performer.analysis.favor_error import errors_on_source
from protein_performer.analysis.options import AnalysisOptions
from protein_performer.benchmarks.dms import DmsOptions, run_dms
from protein_performer.benchmarks.task_types import ModelSpec, TaskInputs
from protein_performer.evaluation.checkpoint_eval import evaluate_checkpoint
from protein_performer.evaluation.perplexity import EvalOptions
from protein_performer.fields import from_shared_fields
from protein_performer.filenames import safe_name
from protein_performer.model.checkpoint import read_checkpoint
from protein_performer.runner import load_model, open_input
from protein_performer.study.biology import headline, run_biology
from protein_performer.study.options import StudyOptions
from protein_performer.study.runs import StudyRun
from protein_performer.training.budget import RECORD


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

    eval_opts = from_shared_fields(EvalOptions, opts)
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
    a_opts = from_shared_fields(AnalysisOptions, opts, n_proteins=opts.analysis_proteins)
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
