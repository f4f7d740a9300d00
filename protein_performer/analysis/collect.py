"""Running a model over proteins: attention summed into :class:`AttentionAggregates` in
length-sorted batches (memory does not grow with the number of proteins), or the map of
one protein. Proteins longer than the model's context keep their first ``max_length`` tokens
(``<cls>`` + residues, no false ``<eos>``: the window validation shows the model; Vig et al.
crop too), and the crop is counted."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from protein_performer.analysis.aggregate import AttentionAggregates
from protein_performer.analysis.options import AnalysisInputError, AnalysisOptions
from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.source import ProteinSource
from protein_performer.devices import resolve_device
from protein_performer.progress import Progress


def model_max_length(model: torch.nn.Module) -> int | None:
    for owner in (model, getattr(model, "cfg", None), getattr(model, "config", None)):
        value = getattr(owner, "max_length", None) if owner is not None else None
        if isinstance(value, int):
            return value
    return None


def _batches(lengths: np.ndarray, per_batch_elems: int) -> Iterator[np.ndarray]:
    """Length-sorted index batches with B * L^2 <= per_batch_elems (at least one protein)."""
    order = np.argsort(lengths, kind="stable")
    batch: list[int] = []
    longest = 0
    for i in order:
        l = int(lengths[i])
        if batch and (len(batch) + 1) * max(longest, l) ** 2 > per_batch_elems:
            yield np.array(batch)
            batch, longest = [], 0
        batch.append(int(i))
        longest = max(longest, l)
    if batch:
        yield np.array(batch)


@torch.no_grad()
def aggregate_attention(
    model: torch.nn.Module, source: ProteinSource, options: AnalysisOptions | None = None
) -> tuple[AttentionAggregates, dict[str, int]]:
    """Run ``model`` over the first ``n_proteins`` proteins of ``source``; sum its attention.

    Returns the aggregates and counts (``n_proteins``, ``n_residues``, ``n_cropped``).
    """
    opts = options or AnalysisOptions()
    device = resolve_device(opts.device)
    model = model.to(device).eval()
    max_length = opts.max_length or model_max_length(model)
    n = len(source) if opts.n_proteins is None else min(opts.n_proteins, len(source))
    if n == 0:
        raise AnalysisInputError("no proteins to analyse")
    lengths = np.asarray(source.lengths[:n], dtype=np.int64) + 2
    if max_length is not None:
        lengths = np.minimum(lengths, max_length)
    # One call on a 3-token protein tells the layer and head counts.
    probe = model.attention_maps(
        torch.tensor(
            [[ALPHABET.cls_idx, int(ALPHABET.standard_idx[0]), ALPHABET.eos_idx]], device=device
        ),
        torch.ones(1, 3, dtype=torch.bool, device=device),
    )
    n_layers, n_heads = len(probe), int(probe[0].shape[1])
    agg = AttentionAggregates(n_layers, n_heads, opts.threshold)
    per_batch = max(1, opts.attention_budget // (n_layers * n_heads))
    counts = {"n_proteins": n, "n_residues": 0, "n_cropped": 0}
    progress = Progress(n, "attention", unit="protein", enabled=opts.progress, interval=30.0)
    try:
        for idx in _batches(lengths, per_batch):
            seqs = []
            for i in idx:
                residues = source[int(i)]
                cropped = max_length is not None and len(residues) + 2 > max_length
                toks = ALPHABET.wrap(residues, max_length)
                counts["n_cropped"] += int(cropped)
                counts["n_residues"] += len(toks) - 2
                seqs.append(toks)
            width = max(len(s) for s in seqs)
            tokens = torch.full((len(seqs), width), ALPHABET.pad_idx, dtype=torch.long)
            for row, s in enumerate(seqs):
                tokens[row, : len(s)] = torch.from_numpy(s)
            mask = tokens != ALPHABET.pad_idx
            tokens, mask = tokens.to(device), mask.to(device)
            maps = model.attention_maps(tokens, mask)
            agg.update(maps, tokens, mask)
            progress.update(len(idx))
    finally:
        progress.close()
    return agg, counts


@torch.no_grad()
def protein_attention(
    model: torch.nn.Module,
    residues: np.ndarray,
    layer: int,
    head: int,
    device: str = "auto",
    max_length: int | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The [L, L] attention map of one protein (with <cls>/<eos>) and its token labels."""
    dev = resolve_device(device)
    model = model.to(dev).eval()
    toks = ALPHABET.wrap(residues, max_length or model_max_length(model))
    tokens = torch.from_numpy(toks)[None].to(dev)
    maps = model.attention_maps(tokens, torch.ones_like(tokens, dtype=torch.bool))
    if not 0 <= layer < len(maps) or not 0 <= head < maps[0].shape[1]:
        raise AnalysisInputError(
            f"map_layer/map_head ({layer}, {head}) out of range: the model has {len(maps)} "
            f"layers x {maps[0].shape[1]} heads (0-based)"
        )
    labels = [ALPHABET.tokens[int(t)] for t in toks]
    return maps[layer][0, head].float().cpu().numpy(), labels
