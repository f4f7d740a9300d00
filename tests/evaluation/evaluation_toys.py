"""Toy language models with known outputs, and small protein sets, for evaluation tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common import tiny_lm
from torch import Tensor, nn

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.source import InMemoryProteins

V = len(ALPHABET)


class ConstantLM(nn.Module):
    """Predicts the same distribution at every position: logits = the given log-probs."""

    def __init__(self, log_probs: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("log_probs", torch.as_tensor(log_probs, dtype=torch.float64))

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        return self.log_probs.expand(*tokens.shape, V).clone()


class KGramLM(nn.Module):
    """Causal toy: logits at t depend only on tokens t-k+1..t (random tables, float64).

    Position-free, so a window that holds the k tokens before a target gives exactly the
    full-context prediction.
    """

    def __init__(self, k: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.k = k
        self.tables = nn.Parameter(torch.randn(k, V, V, generator=g, dtype=torch.float64))

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        out = torch.zeros(*tokens.shape, V, dtype=torch.float64)
        for j in range(self.k):
            shifted = torch.roll(tokens, j, dims=1)
            contrib = self.tables[j][shifted]  # [B, L, V]
            contrib[:, :j] = 0  # no token j positions back
            out = out + contrib
        return out


def random_proteins(lengths: list[int], seed: int = 0) -> InMemoryProteins:
    rng = np.random.default_rng(seed)
    arrays = [rng.choice(ALPHABET.standard_idx, size=n).astype(np.uint8) for n in lengths]
    return InMemoryProteins.from_arrays(arrays, [f"P{i:05d}" for i in range(len(lengths))])


@pytest.fixture
def proteins() -> InMemoryProteins:
    return random_proteins([5, 37, 12, 80, 3, 21])


class BiKGramLM(nn.Module):
    """Bidirectional toy: logits at t depend only on tokens t-k..t+k (masked by ``mask``).

    Position-free, so a window with k tokens of context on each side of a scored token gives
    exactly the full-sequence prediction.
    """

    def __init__(self, k: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.k = k
        self.tables = nn.Parameter(torch.randn(2 * k + 1, V, V, generator=g, dtype=torch.float64))

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        B, L = tokens.shape
        out = torch.zeros(B, L, V, dtype=torch.float64)
        for j, off in enumerate(range(-self.k, self.k + 1)):
            src = torch.arange(L) + off  # the position whose token position t reads
            ok = (src >= 0) & (src < L)
            srcc = src.clamp(0, L - 1)
            contrib = self.tables[j][tokens[:, srcc]]  # [B, L, V]
            keep = ok[None, :] & mask[:, srcc]
            out = out + contrib * keep[..., None]
        return out


def save_tiny_checkpoint(
    path, *, kind: str, objective: str, frequencies=None, seed: int = 0, max_length: int = 48
):
    """A checkpoint in the layout ProteinLMModule writes (hyper_parameters + model.* weights),
    without Lightning: fast, for tests that need several checkpoints."""
    model = tiny_lm(kind, seed=seed, n_layers=1, max_length=max_length, causal=objective == "clm")
    cfg = model.cfg
    torch.save(
        {
            "hyper_parameters": {
                "model": cfg.to_dict(),
                "objective": objective,
                "residue_frequencies": frequencies,
            },
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        path,
    )
    return path
