"""The Performer paper's protein table: accuracy and perplexity per model and split.

Layout (Choromanski et al. 2021, the TrEMBL table): one row per model (e.g. ``exact_uni``,
``favor_relu_bid``) and a first row ``Empirical baseline`` (the unigram model: training
residue frequencies, always predicting the most frequent residue); columns
``(split, "accuracy")`` and ``(split, "perplexity")`` for each split (``test``, ``ood``).
Accuracy is in percent, as in the paper. Unidirectional (``uni``) models are scored by
next-token perplexity, bidirectional (``bid``) ones by masked-token perplexity
(:mod:`protein_performer.evaluation.perplexity`); the baseline is the unigram cross-entropy
of every residue of the split.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from protein_performer.errors import InputError
from protein_performer.evaluation.checkpoint_eval import evaluate_checkpoint
from protein_performer.evaluation.unigram import unigram_residue_metrics
from protein_performer.runner import load_model, open_input

log = logging.getLogger(__name__)

BASELINE_ROW = "Empirical baseline"
METRICS = ("accuracy", "perplexity")


def paper_table(
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    baseline: Mapping[str, Mapping[str, float]] | None = None,
    *,
    accuracy_percent: bool = True,
) -> pd.DataFrame:
    """Rows = models (baseline first), columns = MultiIndex (split, accuracy|perplexity).

    ``results[model][split]`` and ``baseline[split]`` are metric dicts with ``accuracy``
    (a fraction) and ``perplexity``; splits keep their first-seen order; missing cells are NaN.
    """
    splits: list[str] = []
    for per_split in [*(baseline and [baseline] or []), *results.values()]:
        splits += [s for s in per_split if s not in splits]
    columns = pd.MultiIndex.from_tuples(
        [(s, m) for s in splits for m in METRICS], names=["split", "metric"]
    )
    rows: dict[str, list[float]] = {}
    entries = ([(BASELINE_ROW, baseline)] if baseline else []) + list(results.items())
    for label, per_split in entries:
        cells = []
        for split, metric in columns:
            value = float(per_split.get(split, {}).get(metric, float("nan")))
            cells.append(value * 100.0 if metric == "accuracy" and accuracy_percent else value)
        rows[label] = cells
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    table.index.name = "model"
    return table


def table_markdown(table: pd.DataFrame, *, digits: int = 2) -> str:
    """Markdown with flat headers (``test accuracy (%)``, ``test perplexity``)."""
    flat = table.copy()
    flat.columns = [
        f"{split} {metric}" + (" (%)" if metric == "accuracy" else "")
        for split, metric in table.columns
    ]
    return flat.to_markdown(floatfmt=f".{digits}f")


def write_paper_table(
    table: pd.DataFrame, out_dir: str | Path, *, name: str = "paper_table", digits: int = 2
) -> dict[str, Path]:
    """Write ``{name}.md`` and ``{name}.csv`` (two header rows: split, metric) into ``out_dir``.

    Read the CSV back with ``pd.read_csv(path, header=[0, 1], index_col=0)``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, csv = out / f"{name}.md", out / f"{name}.csv"
    md.write_text(table_markdown(table, digits=digits) + "\n")
    table.to_csv(csv, float_format="%.6g")
    return {"markdown": md, "csv": csv}


def default_label(attention_kind: str, causal: bool) -> str:
    """``exact_uni``, ``favor_relu_bid``, ...: the attention kind and the direction."""
    return f"{attention_kind}_{'uni' if causal else 'bid'}"


def evaluate_paper_table(
    checkpoints: Mapping[str, str | Path] | Sequence[tuple[str | None, str | Path]],
    splits: Mapping[str, str | Path],
    *,
    out_dir: str | Path,
    options=None,
    per_protein: bool = False,
) -> pd.DataFrame:
    """Evaluate every checkpoint on every split and write the table (markdown + CSV + JSON).

    ``checkpoints``: label -> checkpoint path, or (label, path) pairs where a ``None`` or empty
    label asks for :func:`default_label` (attention kind + uni/bid);
    ``splits``: split name -> FASTA file or prepared store; ``options``:
    :class:`~protein_performer.evaluation.perplexity.EvalOptions`. The baseline row uses the
    residue frequencies of the first checkpoint. Also writes ``paper_metrics.json`` with every
    model's full metrics.
    """
    out = Path(out_dir)
    baseline_note = None
    results: dict[str, dict[str, dict]] = {}
    baseline: dict[str, dict] = {}
    pairs = list(checkpoints.items()) if isinstance(checkpoints, Mapping) else list(checkpoints)
    used: dict[str, str] = {}
    for label, ckpt in pairs:
        loaded = load_model(ckpt)
        kind = getattr(getattr(loaded.model_cfg, "attention", None), "kind", "model")
        label = label or default_label(str(kind), loaded.objective.causal)
        if label in results:
            raise InputError(f"two checkpoints share the label {label!r}; name them label=path")
        used[label] = str(ckpt)
        log.info("evaluating %s (%s)", label, ckpt)
        run = evaluate_checkpoint(
            loaded,
            splits,
            options=options,
            checkpoint=str(ckpt),
            per_protein_dir=(out / "per_protein" / label) if per_protein else None,
        )
        results[label] = run.files
        if not baseline:
            # The baseline: every residue of the split under the first checkpoint's frequencies.
            for split, path in splits.items():
                baseline[split] = unigram_residue_metrics(
                    open_input(path), run.unigram_residue_log_probs
                )
            baseline_note = run.unigram_source
    table = paper_table(results, baseline)
    write_paper_table(table, out)
    (out / "paper_metrics.json").write_text(
        json.dumps(
            {
                "checkpoints": used,
                "splits": {k: str(v) for k, v in splits.items()},
                "models": results,
                "baseline": baseline,
                "baseline_frequencies": baseline_note,
            },
            indent=2,
            default=_jsonable,
        )
    )
    return table


def _jsonable(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)
