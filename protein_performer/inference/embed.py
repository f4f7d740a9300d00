"""Per-residue and mean-pooled embeddings of proteins from a PerformerLM.

Each protein runs as ``<cls> residues <eos>``; returned per-residue states drop ``<cls>`` and
``<eos>`` (``[n, D]`` for ``n`` residues), the mean is over residues only. Batches are padded
and masked, so a protein's embedding does not depend on its batch mates.

Proteins longer than the model's ``max_length`` run whole in one forward pass (``whole_long``)
when the model allows it (:attr:`PerformerLM.runs_any_length`: rotary positions and FAVOR+ /
AFT-simple / AFT-conv attention, whose memory grows linearly with length), otherwise in
sliding windows whose overlaps are merged so that each token comes from exactly one window
(``windows``, :func:`window_plan`). The index and settings.json say which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from protein_performer.data.alphabet import ALPHABET, tokens_to_letters
from protein_performer.data.batching import Batch, BatchConverter
from protein_performer.errors import InputError
from protein_performer.model.lm import PerformerLM
from protein_performer.model.outputs import ModelOutputs
from protein_performer.progress import Progress
from protein_performer.runner.engine import Engine
from protein_performer.runner.windows import (
    centered_windows,
    sliding_windows,
    window_and_stride,
)


@dataclass
class ProteinEmbedding:
    """One protein's embeddings: ``per_residue[layer]`` float32 [n, D], ``mean[layer]`` [D]."""

    layers: list[int]
    per_residue: list[np.ndarray]
    mean: list[np.ndarray]


def _embedding(states: Sequence[np.ndarray], layers: Sequence[int]) -> ProteinEmbedding:
    """Per-residue states (``<cls>``/``<eos>`` dropped) -> a ProteinEmbedding with the means."""
    return ProteinEmbedding(list(layers), list(states), [p.mean(axis=0) for p in states])


def _from_batch(batch: Batch, out: ModelOutputs, layers: Sequence[int]) -> list[ProteinEmbedding]:
    """The embeddings of every row of a batch of whole proteins."""
    result = []
    for b, n in enumerate(batch.lengths.tolist()):
        per = [out.hidden[k][b, 1 : n - 1].float().cpu().numpy() for k in layers]
        result.append(_embedding(per, layers))
    return result


def embed_batch(
    engine: Engine, sequences: Sequence[str], layers: Sequence[int] = (-1,)
) -> list[ProteinEmbedding]:
    """Embed proteins that fit ``max_length`` (with ``<cls>``/``<eos>``) in one batch."""
    rows = [ALPHABET.wrap(ALPHABET.encode(s)) for s in sequences]
    limit = engine.model.cfg.max_length
    width = max(len(t) for t in rows)
    if width > limit:
        raise InputError(
            f"a protein of {width - 2} residues exceeds model.max_length={limit} (with <cls>/<eos>)"
        )
    batch = BatchConverter()(rows).to(engine.device)
    out = engine.outputs(batch, logits=False, hidden_layers=layers)
    return _from_batch(batch, out, layers)


def long_protein_mode(model: PerformerLM) -> str:
    """How proteins longer than ``max_length`` run: ``whole_long`` (one forward over the whole
    protein, when :attr:`PerformerLM.runs_any_length`: rotary positions and linear-memory
    attention without length-sized tables) or ``windows`` (:func:`window_plan`)."""
    return "whole_long" if model.runs_any_length else "windows"


def long_protein_policy(model: PerformerLM) -> str:
    """One line for the output metadata (settings.json) saying how long proteins run."""
    cfg = model.cfg
    if long_protein_mode(model) == "whole_long":
        return (
            f"whole_long: proteins longer than {cfg.max_length} tokens run whole in one "
            f"forward ({cfg.position} positions, {cfg.attention.kind} attention in linear "
            "memory)"
        )
    _, stride = window_and_stride(cfg.max_length)
    return f"windows of {cfg.max_length} tokens, stride {stride}, " + (
        "causal scored spans" if cfg.causal else "centered split"
    )


def window_plan(
    model: PerformerLM, n_tokens: int, stride: int | None = None
) -> list[tuple[int, int, int, int]]:
    """Windows ``(start, end, keep_from, keep_to)`` over ``n_tokens`` (with ``<cls>``/``<eos>``).

    Proteins that fit ``max_length`` run whole (one window), and so do longer ones when
    :func:`long_protein_mode` is ``whole_long``. Otherwise they run in windows of
    ``max_length`` tokens; each token's state is taken from exactly one window: the centered
    split of the overlaps (masked LM) or the causal windows' scored spans (causal LM, each
    token keeps ``>= window - stride`` tokens of left context), as runner/windows.py defines.
    """
    if n_tokens <= model.cfg.max_length or long_protein_mode(model) == "whole_long":
        return [(0, n_tokens, 0, n_tokens)]
    window, stride = window_and_stride(model.cfg.max_length, None, stride)
    if model.cfg.causal:
        return [(s, e, f, e) for s, e, f in sliding_windows(n_tokens, window, stride)]
    return list(centered_windows(n_tokens, window, stride))


def embed_long(
    engine: Engine, sequence: str, layers: Sequence[int] = (-1,), stride: int | None = None
) -> ProteinEmbedding:
    """Embed one protein of any length by :func:`window_plan`.

    Merge: each token is taken from one window.
    """
    tokens = ALPHABET.wrap(ALPHABET.encode(sequence))
    parts: list[list[np.ndarray]] = [[] for _ in layers]
    convert = BatchConverter()
    for start, end, lo, hi in window_plan(engine.model, len(tokens), stride):
        batch = convert([tokens[start:end]]).to(engine.device)
        out = engine.outputs(batch, logits=False, hidden_layers=layers, any_length=True)
        for k, layer in enumerate(layers):
            parts[k].append(out.hidden[layer][0, lo - start : hi - start].float().cpu().numpy())
    return _embedding([np.concatenate(p)[1:-1] for p in parts], layers)  # drop <cls>, <eos>


def embed_source(
    engine: Engine,
    source,
    store,
    layers: Sequence[int] = (-1,),
    batch_tokens: int = 16384,
    progress: bool = True,
) -> int:
    """Embed every protein of ``source`` not yet in ``store``; returns how many were written.

    Token-budget batches of length-sorted proteins that fit ``max_length`` (mode ``whole`` in
    the index); longer ones run alone through :func:`embed_long` (mode
    :func:`long_protein_mode`: ``whole_long`` or ``windows``).
    """
    model = engine.model
    todo = [i for i in range(len(source)) if i not in store.done]
    fits = [i for i in todo if len(source[i]) + 2 <= model.cfg.max_length]
    long = [i for i in todo if len(source[i]) + 2 > model.cfg.max_length]
    bar = Progress(len(todo), "embed", unit="protein", enabled=progress, interval=30.0)
    long_mode = long_protein_mode(model)

    def write(batch: Batch, out: ModelOutputs) -> None:
        items = [fits[j] for j in batch.index.tolist()]
        for i, emb in zip(items, _from_batch(batch, out, layers)):
            store.write(i, source.accession(i), list(layers), emb.per_residue, emb.mean, "whole")

    rows = [ALPHABET.wrap(source[i]) for i in fits]
    engine.run(
        rows,
        write,
        budget=batch_tokens,
        longest_first=False,
        logits=False,
        hidden_layers=layers,
        progress=bar,
    )
    for i in long:
        emb = embed_long(engine, tokens_to_letters(source[i]).decode(), layers)
        store.write(i, source.accession(i), list(layers), emb.per_residue, emb.mean, long_mode)
        bar.update(1)
    bar.close()
    return len(todo)
