"""``protein-performer-analyze``: attention of a trained model vs substitution matrices.

    protein-performer-analyze ckpt_path=run/checkpoints/last.ckpt
    protein-performer-analyze 'ckpts=[a/last.ckpt,b/last.ckpt]'        # sweep comparison
    protein-performer-analyze 'runs=[outputs/analyze/x,outputs/analyze/y]'  # from earlier runs

Thin: :func:`analyze` turns conf/analyze.yaml into typed options and calls
:func:`protein_performer.analysis.run.analyze_model` (one model) or, for a sweep, that per
model and then :mod:`protein_performer.analysis.compare`. Bad inputs (missing checkpoint or
file, unknown matrix name, malformed FASTA) end with a one-line error and exit status 2.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from protein_performer.analysis.compare import (
    load_runs,
    metrics_beside,
    read_metrics,
    run_label,
    summary_row,
    sweep_table,
    write_sweep,
)
from protein_performer.analysis.control import analyze_with_control
from protein_performer.analysis.favor_error import errors_on_source, plot_errors
from protein_performer.analysis.options import AnalysisOptions
from protein_performer.analysis.run import analyze_model
from protein_performer.cli.config import ConfigError, user_path
from protein_performer.cli.task import options_from, plain, require, run_task
from protein_performer.evaluation.unigram import EMBEDDED_VALID
from protein_performer.filenames import safe_name
from protein_performer.runner import load_model, open_input

log = logging.getLogger(__name__)

PROG = "protein-performer-analyze"
CKPT_USAGE = (
    f"{PROG} ckpt_path=path/to/last.ckpt (or ckpts=[...] / runs=[...] for a sweep comparison)"
)
# An absolute path: Hydra resolves a relative one as a Python package, which conf/ is not.
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def _list(cfg: DictConfig, key: str) -> list | None:
    value = plain(cfg.get(key))
    if value is None:
        return None
    return [value] if isinstance(value, (str, Path)) else list(value)


def analysis_options(cfg: DictConfig) -> AnalysisOptions:
    """conf/analyze.yaml -> :class:`AnalysisOptions` (validated: names the bad field)."""
    return options_from(AnalysisOptions, cfg, "analyze")


def _source(cfg: DictConfig):
    fasta = plain(cfg.get("fasta"))
    if isinstance(fasta, list):
        if len(fasta) != 1:
            raise ConfigError(f"fasta: give one file (got {len(fasta)}); concatenate files first")
        fasta = fasta[0]
    path = EMBEDDED_VALID if fasta is None else user_path(fasta)
    return path, open_input(path)


def _analyze_one(
    cfg: DictConfig, ckpt: Path, source_path: Path, source, options, out_dir: Path
) -> dict[str, Any]:
    model = load_model(ckpt).model
    kwargs = dict(
        figures=bool(cfg.figures),
        map_protein=plain(cfg.map_protein),
        map_layer=cfg.map_layer,
        map_head=cfg.map_head,
        extra={"checkpoint": str(ckpt), "input": str(source_path)},
    )
    summary = None
    if cfg.get("control", True):
        result, _, summary, files = analyze_with_control(model, source, out_dir, options, **kwargs)
    else:
        result, files = analyze_model(model, source, out_dir, options, **kwargs)
    if cfg.get("favor_error", False):
        _favor_error(cfg, model, source, out_dir)
    for warning in result.warnings():
        log.warning(warning)
        print(f"warning: {warning}")
    ref = options.reference
    stats = result.overall["vig"][ref]
    print(
        f"{ckpt}: attention (Vig similarity) vs {ref}: Pearson r = {stats['pearson']:.3f}, "
        f"Spearman = {stats['spearman']:.3f}, permutation p = {stats['permutation_p']:.3g} "
        f"({int(result.kept.sum())}/{result.kept.size} heads kept, "
        f"{result.counts['n_proteins']} proteins); direct mode r = "
        f"{result.overall['direct'][ref]['pearson']:.3f}"
    )
    if result.best_head:
        b = result.best_head
        print(
            f"best head (direct mode): layer {b['layer']} head {b['head']}, "
            f"r = {b['direct_pearson']:.3f}"
        )
    if summary is not None:
        v = summary["vig"]
        print(
            f"random-init control (same config, fresh weights): r = "
            f"{_num(v['control_pearson'])}, permutation p = {_num(v['control_permutation_p'])}"
            f"; {'beats' if v['beats_control'] else 'does not beat'} the control at p < 0.01"
        )
    print(f"wrote {files['blosum_comparison']}")
    return json.loads(Path(files["blosum_comparison"]).read_text())


def _num(x: Any) -> str:
    return "n/a" if x is None or x != x else f"{x:.3g}"


def _favor_error(cfg: DictConfig, model, source, out_dir: Path) -> None:
    """FAVOR+ vs exact softmax on this model's own q, k: favor_error.csv + .png."""
    features = [int(m) for m in cfg.get("favor_error_features", [16, 64, 256])]
    table = errors_on_source(model, source, int(cfg.get("favor_error_proteins", 8)), features)
    table.to_csv(out_dir / "favor_error.csv", index=False)
    plot_errors(table, out_dir / "favor_error")
    mean = table.groupby("nb_features")["output_rel_error"].mean()
    print(
        "FAVOR+ relative error of the attention output on this model's q, k: "
        + ", ".join(f"m={m}: {e:.3f}" for m, e in mean.items())
    )


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        n = seen.get(label, 0)
        seen[label] = n + 1
        out.append(label if n == 0 else f"{label}#{n}")
    return out


def _sweep(cfg: DictConfig, out_dir: Path, options) -> dict[str, Any]:
    ckpts, runs = _list(cfg, "ckpts"), _list(cfg, "runs")
    if ckpts and runs:
        raise ConfigError("give either ckpts=[...] or runs=[...], not both")
    items = ckpts or runs or []
    if not items:
        raise ConfigError("ckpts / runs must list at least one checkpoint / run directory")
    labels = _list(cfg, "labels")
    metrics = _list(cfg, "metrics")
    for name, values in (("labels", labels), ("metrics", metrics)):
        if values is not None and len(values) != len(items):
            raise ConfigError(
                f"{name} has {len(values)} entries but {len(items)} "
                f"{'ckpts' if ckpts else 'runs'} were given: one per model"
            )
    metrics_paths = [(user_path(m) if m else None) for m in metrics] if metrics else None
    if runs:
        table = load_runs([user_path(r) for r in runs], labels, metrics_paths)
    else:
        paths = [user_path(c) for c in ckpts]
        labels = _unique(labels or [run_label(p) for p in paths])
        source_path, source = _source(cfg)
        rows = []
        for i, (ckpt, label) in enumerate(zip(paths, labels)):
            comp = _analyze_one(
                cfg, ckpt, source_path, source, options, out_dir / safe_name(label, "model", 100)
            )
            m = metrics_paths[i] if metrics_paths else metrics_beside(ckpt)
            rows.append(summary_row(comp, label, read_metrics(m) if m else None))
        table = sweep_table(rows)
    files = write_sweep(table, out_dir)
    print(
        table.drop(columns=["checkpoint"])
        .dropna(axis=1, how="all")
        .to_markdown(index=False, floatfmt=".3g")
    )
    print(f"wrote {files['comparison_csv']}")
    return {
        "comparison": json.loads(table.to_json(orient="records")),
        "files": files,
        "output_dir": str(out_dir),
    }


def analyze(cfg: DictConfig) -> dict[str, Any]:
    """Analyse ``cfg.ckpt_path`` (or compare ``cfg.ckpts`` / ``cfg.runs``); returns a dict
    (for one model: what ``blosum_comparison.json`` holds)."""
    options = analysis_options(cfg)
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("ckpts") is not None or cfg.get("runs") is not None:
        if cfg.get("ckpt_path"):
            raise ConfigError("give ckpt_path (one model) or ckpts/runs (a comparison), not both")
        return _sweep(cfg, out_dir, options)
    ckpt = user_path(require(cfg, "ckpt_path", CKPT_USAGE))
    source_path, source = _source(cfg)  # a bad input file fails before the model loads
    return _analyze_one(cfg, ckpt, source_path, source, options, out_dir)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="analyze")
def _hydra_main(cfg: DictConfig) -> None:
    run_task(PROG, analyze, cfg)


def main() -> None:
    """Console entry point; a leading ``compare`` word is accepted (sweep comparison)."""
    if len(sys.argv) > 1 and sys.argv[1] == "compare":
        del sys.argv[1]
    _hydra_main()


if __name__ == "__main__":
    main()
