"""Running a model over proteins: attention summed into :class:`AttentionAggregates` in
length-sorted batches (memory does not grow with the number of proteins), or the map of
one protein. Proteins longer than the model's context keep their first ``max_length`` tokens
(``<cls>`` + residues, no false ``<eos>``: the window validation shows the model; Vig et al.
crop too), and the crop is counted.

The model is a :class:`~protein_performer.model.lm.PerformerLM` (or anything with its
``cfg.n_layers`` / ``cfg.n_heads`` / ``cfg.max_length`` and ``run``), run by the
:class:`~protein_performer.runner.engine.Engine`.
"""

from __future__ import annotations

import numpy as np
import torch

from protein_performer.analysis.aggregate import AttentionAggregates
from protein_performer.analysis.options import AnalysisInputError, AnalysisOptions
from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.batching import Batch, BatchConverter
from protein_performer.data.source import ProteinSource
from protein_performer.model.outputs import ModelOutputs
from protein_performer.progress import Progress
from protein_performer.runner.engine import Engine


def aggregate_attention(
    model: torch.nn.Module, source: ProteinSource, options: AnalysisOptions | None = None
) -> tuple[AttentionAggregates, dict[str, int]]:
    """Run ``model`` over the first ``n_proteins`` proteins of ``source``; sum its attention.

    Batches hold proteins of similar length, shortest first, with
    ``B * L^2 * layers * heads <= attention_budget``. Returns the aggregates and counts
    (``n_proteins``, ``n_residues``, ``n_cropped``).
    """
    opts = options or AnalysisOptions()
    engine = Engine(model, opts.device)
    max_length = opts.max_length or model.cfg.max_length
    n = len(source) if opts.n_proteins is None else min(opts.n_proteins, len(source))
    if n == 0:
        raise AnalysisInputError("no proteins to analyse")
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    agg = AttentionAggregates(n_layers, n_heads, opts.threshold)
    rows = [ALPHABET.wrap(source[i], max_length) for i in range(n)]
    lengths = np.asarray(source.lengths[:n], dtype=np.int64)
    counts = {
        "n_proteins": n,
        "n_residues": int(sum(len(r) - 2 for r in rows)),
        "n_cropped": int((lengths + 2 > max_length).sum()),
    }

    def add(batch: Batch, out: ModelOutputs) -> None:
        agg.update([out.attention[i] for i in range(n_layers)], batch.tokens, batch.mask)

    progress = Progress(n, "attention", unit="protein", enabled=opts.progress, interval=30.0)
    try:
        engine.run(
            rows,
            add,
            budget=max(1, opts.attention_budget // (n_layers * n_heads)),
            cost="quadratic",
            longest_first=False,
            logits=False,
            attention_layers=range(n_layers),
            progress=progress,
        )
    finally:
        progress.close()
    return agg, counts


def protein_attention(
    model: torch.nn.Module,
    residues: np.ndarray,
    layer: int,
    head: int,
    device: str = "auto",
    max_length: int | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The [L, L] attention map of one protein (with <cls>/<eos>) and its token labels."""
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    if not 0 <= layer < n_layers or not 0 <= head < n_heads:
        raise AnalysisInputError(
            f"map_layer/map_head ({layer}, {head}) out of range: the model has {n_layers} "
            f"layers x {n_heads} heads (0-based)"
        )
    engine = Engine(model, device)
    toks = ALPHABET.wrap(residues, max_length or model.cfg.max_length)
    batch = BatchConverter()([toks]).to(engine.device)
    out = engine.outputs(batch, logits=False, attention_layers=(layer,))
    labels = [ALPHABET.tokens[int(t)] for t in toks]
    return out.attention[layer][0, head].float().cpu().numpy(), labels
