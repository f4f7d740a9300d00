"""Model + proteins -> attention aggregates -> comparison with substitution matrices -> files.

One call (:func:`analyze_model`) over the parts: :mod:`~.collect` (the model pass),
:mod:`~.summary` (matrices and statistics), :mod:`~.outputs` and :mod:`~.figures` (files),
:mod:`~.inputs` (which protein the map shows), :mod:`~.options`.

    agg = aggregate_attention(model, source, AnalysisOptions(n_proteins=800))
    result = summarise(agg, AnalysisOptions())
    paths = write_outputs(result, out_dir)      # blosum_comparison.json, per_head.csv, ...

The model is a :class:`~protein_performer.model.lm.PerformerLM` (its ``run`` returns each
layer's [B, H, L, L] attention; for FAVOR+ and AFT the implicit matrices their cores imply).
Proteins stream through in length-sorted batches; only sums are kept (see
:mod:`protein_performer.analysis.aggregate` for the method), so memory does not grow with
the number of proteins. Proteins longer than the model's context are cropped to their first
``max_length - 2`` residues (Vig et al. crop too), and the crop is counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from protein_performer.analysis.collect import aggregate_attention, protein_attention
from protein_performer.analysis.inputs import protein_index
from protein_performer.analysis.options import AnalysisOptions
from protein_performer.analysis.outputs import write_outputs
from protein_performer.analysis.summary import AnalysisResult, summarise
from protein_performer.data.source import ProteinSource


def analyze_model(
    model: torch.nn.Module,
    source: ProteinSource,
    out_dir: str | Path,
    options: AnalysisOptions | None = None,
    *,
    figures: bool = True,
    map_protein: int | str = 0,
    map_layer: int | None = None,
    map_head: int | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[AnalysisResult, dict[str, Any]]:
    """The whole analysis of one model: aggregate, summarise, write files and figures.

    Returns the result and the paths written (``blosum_comparison``, ``per_head``, figures...).
    """
    opts = options or AnalysisOptions()
    index = protein_index(source, map_protein) if figures else 0
    agg, counts = aggregate_attention(model, source, opts)
    result = summarise(agg, opts, counts)
    result.extra.update(extra or {})
    files: dict[str, Any] = {}
    if figures:
        # matplotlib loads only when figures are drawn
        from protein_performer.analysis.figures import write_figures

        best = result.best_head or {"layer": 0, "head": 0}
        layer = best["layer"] if map_layer is None else int(map_layer)
        head = best["head"] if map_head is None else int(map_head)
        matrix, labels = protein_attention(
            model, source[index], layer, head, opts.device, opts.max_length
        )
        title = f"{source.accession(index)}: layer {layer}, head {head}"
        files.update(write_figures(result, out_dir, (matrix, labels, layer, head, title)))
        result.extra["attention_map"] = {
            "protein": source.accession(index),
            "layer": layer,
            "head": head,
        }
    files.update(write_outputs(result, out_dir, agg))
    return result, files
