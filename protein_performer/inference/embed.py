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

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from protein_performer.data.alphabet import ALPHABET
from protein_performer.model.lm import PerformerLM
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


def embed_batch(
    model: PerformerLM, sequences: Sequence[str], layers: Sequence[int] = (-1,)
) -> list[ProteinEmbedding]:
    """Embed proteins that fit ``model.cfg.max_length`` (with ``<cls>``/``<eos>``) in one batch."""
    encoded = [ALPHABET.wrap(ALPHABET.encode(s)) for s in sequences]
    width = max(len(t) for t in encoded)
    if width > model.cfg.max_length:
        raise ValueError(
            f"a protein of {width - 2} residues exceeds model.max_length={model.cfg.max_length} "
            "(with <cls>/<eos>)"
        )
    device = next(model.parameters()).device
    tokens = torch.full((len(encoded), width), ALPHABET.pad_idx, dtype=torch.long)
    for i, t in enumerate(encoded):
        tokens[i, : len(t)] = torch.from_numpy(t)
    tokens = tokens.to(device)
    mask = tokens != ALPHABET.pad_idx
    states = model.hidden_states(tokens, mask, layers)  # each [B, L, D]
    out = []
    for i, t in enumerate(encoded):
        n = len(t) - 2
        per = [s[i, 1 : 1 + n].float().cpu().numpy() for s in states]  # drop <cls>, <eos>
        out.append(ProteinEmbedding(list(layers), per, [p.mean(axis=0) for p in per]))
    return out


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
    model: PerformerLM, sequence: str, layers: Sequence[int] = (-1,), stride: int | None = None
) -> ProteinEmbedding:
    """Embed one protein of any length by :func:`window_plan` (merge: each token from one window)."""
    tokens = ALPHABET.wrap(ALPHABET.encode(sequence))
    device = next(model.parameters()).device
    parts: list[list[np.ndarray]] = [[] for _ in layers]
    for start, end, lo, hi in window_plan(model, len(tokens), stride):
        t = torch.from_numpy(tokens[start:end]).unsqueeze(0).to(device)
        for k, s in enumerate(model.hidden_states(t, None, layers, any_length=True)):
            parts[k].append(s[0, lo - start : hi - start].float().cpu().numpy())
    per = [np.concatenate(p)[1:-1] for p in parts]  # drop <cls>, <eos>
    return ProteinEmbedding(list(layers), per, [p.mean(axis=0) for p in per])


def embed_source(
    model: PerformerLM,
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
    from protein_performer.data.alphabet import tokens_to_letters
    from protein_performer.progress import Progress

    todo = [i for i in range(len(source)) if i not in store.done]
    lengths = np.asarray(source.lengths)[todo] + 2 if todo else np.zeros(0, dtype=int)
    order = [todo[j] for j in np.argsort(lengths, kind="stable")]
    bar = Progress(len(order), "embed", unit="protein", enabled=progress, interval=30.0)
    written, batch, width = 0, [], 0
    limit = model.cfg.max_length
    long_mode = long_protein_mode(model)

    def flush(items: list[int]) -> int:
        seqs = [tokens_to_letters(source[i]).decode() for i in items]
        for i, emb in zip(items, embed_batch(model, seqs, layers)):
            store.write(i, source.accession(i), list(layers), emb.per_residue, emb.mean, "whole")
        bar.update(len(items))
        return len(items)

    for i in order:
        n = len(source[i]) + 2
        if n > limit:
            emb = embed_long(model, tokens_to_letters(source[i]).decode(), layers)
            store.write(i, source.accession(i), list(layers), emb.per_residue, emb.mean, long_mode)
            bar.update(1)
            written += 1
            continue
        if batch and max(width, n) * (len(batch) + 1) > batch_tokens:
            written += flush(batch)
            batch, width = [], 0
        batch.append(i)
        width = max(width, n)
    if batch:
        written += flush(batch)
    bar.close()
    return written
