"""What a frozen model says about proteins, through the runner's Engine: every layer x head
attention map over the residues, per-residue hidden states, mean-pooled hidden states.

Each protein runs as ``<cls> residues <eos>``; outputs drop ``<cls>`` and ``<eos>``. Hidden
states of proteins longer than the model come from windows
(:func:`protein_performer.inference.embed.window_plan`: each token from exactly one window).
Attention maps need the whole protein in one pass (proteins longer than ``max_length`` are
an error naming the protein).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from protein_performer.data.alphabet import ALPHABET
from protein_performer.errors import InputError
from protein_performer.inference.embed import window_plan
from protein_performer.runner import Engine


def token_rows(sequences: Sequence[str]) -> list[np.ndarray]:
    """``<cls> residues <eos>`` token ids of each sequence (unknown letters -> ``<unk>``)."""
    return [ALPHABET.wrap(ALPHABET.encode(s, unknown_to_unk=True)) for s in sequences]


def attention_maps(
    engine: Engine, sequences: Sequence[str], names: Sequence[str] | None = None, budget=2**20
) -> list[np.ndarray]:
    """float32 ``[layers * heads, L, L]`` per sequence: every block's attention matrix
    (implicit for FAVOR+ and AFT) over the residues, layer-major (feature ``l * H + h``)."""
    model = engine.model
    n_layers, limit = len(model.blocks), model.cfg.max_length
    rows = token_rows(sequences)
    for k, r in enumerate(rows):
        if len(r) > limit:
            who = names[k] if names is not None else f"sequence {k}"
            raise InputError(
                f"{who} has {len(r) - 2} residues; attention maps need the whole protein in "
                f"one pass (model.max_length {limit} = residues + 2): leave it out"
            )
    out: list[np.ndarray | None] = [None] * len(rows)

    def keep(batch, outputs) -> None:
        att = torch.stack([outputs.attention[i] for i in range(n_layers)], 1)  # [B, N, H, T, T]
        for b, idx in enumerate(batch.index.tolist()):
            n = len(rows[idx]) - 2
            maps = att[b, :, :, 1 : n + 1, 1 : n + 1]  # residues only
            out[idx] = maps.reshape(-1, n, n).float().cpu().numpy()

    engine.run(
        rows, keep, budget=budget, cost="quadratic", logits=False, attention_layers=range(n_layers)
    )
    return out  # type: ignore[return-value]


def hidden_states(
    engine: Engine,
    sequences: Sequence[str],
    layer: int = -1,
    pool: bool = False,
    budget: int = 16384,
) -> list[np.ndarray]:
    """Block ``layer``'s output per residue, float32 ``[L, D]`` per sequence, or with
    ``pool`` its mean over the residues ``[D]`` (kept as sums, so memory stays ``[N, D]``)."""
    model = engine.model
    width = model.cfg.d_model
    rows, where = [], []  # window rows; (protein, start, keep_from, keep_to, n_tokens)
    for k, tokens in enumerate(token_rows(sequences)):
        for start, end, lo, hi in window_plan(model, len(tokens)):
            rows.append(tokens[start:end])
            where.append((k, start, lo, hi, len(tokens)))
    sums = np.zeros((len(sequences), width), dtype=np.float64) if pool else None
    parts: list[dict[int, np.ndarray]] = [{} for _ in sequences]

    def keep(batch, outputs) -> None:
        states = outputs.hidden[layer]
        for b, idx in enumerate(batch.index.tolist()):
            k, start, lo, hi, n_tokens = where[idx]
            lo, hi = max(lo, 1), min(hi, n_tokens - 1)  # residues only: no <cls>, <eos>
            if hi <= lo:
                continue
            s = states[b, lo - start : hi - start].float().cpu().numpy()
            if pool:
                sums[k] += s.sum(0)
            else:
                parts[k][lo] = s

    engine.run(rows, keep, budget=budget, logits=False, hidden_layers=(layer,), any_length=True)
    if pool:
        lengths = np.array([max(len(s), 1) for s in sequences], dtype=np.float64)
        return list((sums / lengths[:, None]).astype(np.float32))
    return [
        np.concatenate([p[key] for key in sorted(p)]) if p else np.zeros((0, width), np.float32)
        for p in parts
    ]
