"""Attention maps and hidden states through the Engine equal the model's own, one protein at
a time (float64), windows included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protein_performer.benchmarks.representations import (
    attention_maps,
    hidden_states,
    token_rows,
)
from protein_performer.data.alphabet import STANDARD_AMINO_ACIDS
from protein_performer.errors import InputError
from protein_performer.inference.embed import embed_long
from protein_performer.model import ModelConfig, PerformerLM
from protein_performer.runner import Engine

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(kind: str, causal: bool = False) -> PerformerLM:
    values = dict(
        d_model=16,
        n_layers=2,
        n_heads=2,
        d_ff=32,
        dropout=0.0,
        max_length=40,
        causal=causal,
        attention={"kind": kind, "nb_features": 8, "chunk_size": 4},
    )
    torch.manual_seed(0)
    return PerformerLM(ModelConfig.from_dict(values)).double().eval()


def proteins(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(STANDARD_AMINO_ACIDS), size=n)) for n in lengths]


@pytest.mark.parametrize("kind,causal", [("favor_relu", False), ("favor_softmax", True)])
def test_attention_maps_are_each_layer_and_head_over_residues(kind, causal):
    model = tiny(kind, causal)
    seqs = proteins([5, 30, 17])
    maps = attention_maps(Engine(model, "cpu"), seqs, budget=2 * 32**2)
    for seq, m in zip(seqs, maps):
        tokens = torch.from_numpy(token_rows([seq])[0])[None]
        ref = torch.stack(model.attention_maps(tokens), 1)[0, :, :, 1:-1, 1:-1]  # [N, H, L, L]
        assert m.shape == (4, len(seq), len(seq))
        np.testing.assert_allclose(m, ref.reshape(4, len(seq), len(seq)).numpy(), atol=1e-5)


def test_attention_maps_refuse_a_protein_longer_than_the_model():
    with pytest.raises(InputError, match="1xyzA has 50 residues"):
        attention_maps(Engine(tiny("exact"), "cpu"), proteins([50]), names=["1xyzA"])


@pytest.mark.parametrize("causal", [False, True])
def test_hidden_states_per_residue_and_pooled_with_windows(causal):
    model = tiny("favor_relu", causal)
    seqs = proteins([12, 100, 3, 38])  # 100 + 2 tokens > max_length 40: windows
    engine = Engine(model, "cpu")
    per = hidden_states(engine, seqs, layer=0, budget=64)
    pooled = hidden_states(engine, seqs, layer=0, pool=True)
    for seq, p, m in zip(seqs, per, pooled):
        ref = embed_long(engine, seq, layers=(0,)).per_residue[0]  # one window at a time
        assert p.shape == (len(seq), 16)
        np.testing.assert_allclose(p, ref, atol=1e-5)
        np.testing.assert_allclose(m, ref.mean(0), atol=1e-5)
