"""Per-residue and mean-pooled embeddings of proteins from a PerformerLM.

Each protein runs as ``<cls> residues <eos>``; returned per-residue states drop ``<cls>`` and
``<eos>`` (``[n, D]`` for ``n`` residues), the mean is over residues only. Batches are padded
and masked, so a protein's embedding does not depend on its batch mates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from protein_performer.data.alphabet import ALPHABET
from protein_performer.evaluation.perplexity import with_specials
from protein_performer.model.lm import PerformerLM


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
    encoded = [with_specials(ALPHABET.encode(s).astype(np.int64)) for s in sequences]
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
