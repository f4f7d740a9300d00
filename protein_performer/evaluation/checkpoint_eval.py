"""A trained checkpoint on several files: load it, score each file with
:func:`~protein_performer.evaluation.perplexity.evaluate_source` against its unigram
baseline, optionally one per-protein CSV per file (``protein-performer-eval`` runs this)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protein_performer.data.source import ProteinSource
from protein_performer.evaluation.perplexity import EvalOptions, evaluate_source
from protein_performer.evaluation.unigram import baseline_log_probs
from protein_performer.filenames import safe_name
from protein_performer.runner.engine import Engine
from protein_performer.runner.inputs import file_labels, open_input


@dataclass
class CheckpointEvaluation:
    """Metrics of one checkpoint on several files (``files``: label -> metrics)."""

    checkpoint: str
    objective: str
    max_length: int
    files: dict[str, dict]
    unigram_source: str
    unigram_log_probs: np.ndarray  # [V] over the scored vocabulary
    unigram_residue_log_probs: np.ndarray  # [V] over the residues only (paper baseline)

    def summary(self) -> dict:
        """JSON-ready: everything but the arrays."""
        return {
            "checkpoint": self.checkpoint,
            "objective": self.objective,
            "max_length": self.max_length,
            "unigram_source": self.unigram_source,
            "files": self.files,
        }


def evaluate_checkpoint(
    loaded,
    files: dict[str, str | Path] | Sequence[str | Path],
    *,
    options: EvalOptions | None = None,
    per_protein_dir: str | Path | None = None,
    checkpoint: str = "",
) -> CheckpointEvaluation:
    """Evaluate a loaded LM (:class:`~protein_performer.runner.LoadedLM`) on files.

    ``files``: label -> path (or an opened ProteinSource), or paths (labelled by
    :func:`file_labels`). Inputs are opened (and checked) before any scoring, so a bad file
    fails fast. Per-protein CSVs go to ``per_protein_dir/<label>.csv``.
    """
    if not isinstance(files, dict):
        files = dict(zip(file_labels(files), files))
    opt = options or EvalOptions()
    sources = {
        label: path if isinstance(path, ProteinSource) else open_input(path)
        for label, path in files.items()
    }
    objective = loaded.objective
    max_length = int(loaded.model_cfg.max_length)
    lp, note = baseline_log_probs(loaded.residue_frequencies, include_eos=objective.causal)
    lp_res, _ = baseline_log_probs(loaded.residue_frequencies, include_eos=False)
    engine = Engine(loaded.model, opt.device)  # the device decided once for every file
    results: dict[str, dict] = {}
    for label, source in sources.items():
        csv_path = None
        if per_protein_dir is not None:
            csv_path = Path(per_protein_dir) / f"{_csv_stem(label)}.csv"
        metrics = evaluate_source(
            engine,
            source,
            objective=objective,
            max_length=max_length,
            unigram_log_probs=lp,
            options=opt,
            per_protein_csv=csv_path,
            desc=label,
        )
        metrics["path"] = str(_describe(files[label]))
        if csv_path is not None:
            metrics["per_protein_csv"] = str(csv_path)
        results[label] = metrics
    return CheckpointEvaluation(
        checkpoint=checkpoint,
        objective=objective.name,
        max_length=max_length,
        files=results,
        unigram_source=note,
        unigram_log_probs=lp,
        unigram_residue_log_probs=lp_res,
    )


def _describe(item) -> str:
    if isinstance(item, ProteinSource):
        return str(getattr(item, "path", type(item).__name__))
    return str(item)


def _csv_stem(label: str) -> str:
    """A file label as the stem of its per-protein CSV: sanitised, FASTA suffixes dropped."""
    stem = safe_name(label, "input")
    for suffix in (".gz", ".fasta", ".fa", ".faa"):
        stem = stem.removesuffix(suffix)
    return stem or "input"
