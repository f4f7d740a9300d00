"""A study of a training sweep in one report: perplexity against the unigram baseline with
confidence intervals, curves, attention vs BLOSUM beside the random-init null, and the
FAVOR+ approximation error on a trained model's own queries and keys.

    report = run_study("multirun/train/<date>/<time>", StudyOptions(splits={...}))
    # -> <sweep>/study/report.md + study.json + tables (CSV) + figures (PNG, PDF)

The numbers and their definitions: :mod:`~protein_performer.study.tables`; the text:
:mod:`~protein_performer.study.markdown`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from protein_performer.jsonsafe import finite
from protein_performer.study.biology import biology_section
from protein_performer.study.markdown import dms_section, render_report
from protein_performer.study.options import StudyOptions
from protein_performer.study.runs import find_study_runs
from protein_performer.study.tables import (
    biology_table,
    blosum_with_controls,
    dms_table,
    evaluate_runs,
    favor_error_table,
    training_table,
)
from protein_performer.training.sweep_summary import read_metrics

log = logging.getLogger(__name__)


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
