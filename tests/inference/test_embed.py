"""Embeddings: a protein's embedding is the same in a padded batch and alone; hidden_states
agrees with forward."""

import numpy as np
import pytest
import torch
from common import tiny_lm

from protein_performer.inference.embed import embed_batch, embed_long, window_plan
from protein_performer.model.lm import PerformerLM
from protein_performer.runner import Engine

SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "MKV", "ACDEFGHIKLMNPQRSTVWY"]


def _model(position: str, kind: str) -> PerformerLM:
    return tiny_lm(kind, position=position).double()


@pytest.mark.parametrize("position, kind", [("rotary", "favor_softmax"), ("learned", "exact")])
def test_batched_equals_alone(position, kind):
    model = _model(position, kind)
    batched = embed_batch(Engine(model, "cpu"), SEQS, layers=[0, -1])
    for seq, emb in zip(SEQS, batched):
        alone = embed_batch(Engine(model, "cpu"), [seq], layers=[0, -1])[0]
        for b, a in zip(emb.per_residue + emb.mean, alone.per_residue + alone.mean):
            # float64 model, outputs stored as float32: equal to float32 rounding.
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
        assert emb.per_residue[0].shape == (len(seq), 16)


def test_last_layer_is_what_the_head_reads():
    model = _model("rotary", "favor_softmax")
    tokens = torch.randint(6, 26, (2, 10))
    (last,) = model.hidden_states(tokens, None, [-1])
    logits = torch.nn.functional.linear(last, model.token_embedding.weight, model.head_bias)
    torch.testing.assert_close(logits, model(tokens), rtol=0, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_long_protein_in_windows(causal):
    model = tiny_lm("exact", n_layers=1, max_length=16, causal=causal).double()
    seq = "ACDEFGHIKLMNPQRSTVWY" * 3  # 62 tokens with <cls>/<eos>, > max_length 16
    plan = window_plan(model, len(seq) + 2)
    kept = [i for _, _, lo, hi in plan for i in range(lo, hi)]
    assert kept == list(range(len(seq) + 2))  # every token from exactly one window
    emb = embed_long(Engine(model, "cpu"), seq)
    assert emb.per_residue[0].shape == (len(seq), 16)
    # Each residue equals the model run on its own window alone.
    from protein_performer.data.alphabet import ALPHABET

    tokens = torch.from_numpy(ALPHABET.wrap(ALPHABET.encode(seq)))
    for start, end, lo, hi in plan:
        (s,) = model.hidden_states(tokens[start:end][None], None, [-1])
        for i in range(max(lo, 1), min(hi, len(seq) + 1)):
            np.testing.assert_allclose(
                emb.per_residue[0][i - 1], s[0, i - start].numpy(), rtol=0, atol=1e-6
            )


def test_short_protein_whole_equals_batch():
    model = _model("rotary", "favor_softmax")
    a = embed_long(Engine(model, "cpu"), SEQS[0])
    b = embed_batch(Engine(model, "cpu"), [SEQS[0]])[0]
    np.testing.assert_allclose(a.per_residue[0], b.per_residue[0], rtol=0, atol=1e-6)


def _rotary_pair(kind: str, causal: bool) -> tuple[PerformerLM, PerformerLM]:
    """The same weights at max_length 16 and at 128 (rotary: nothing depends on the length)."""
    short = tiny_lm(kind, max_length=16, causal=causal, position="rotary").double()
    full = tiny_lm(kind, seed=None, max_length=128, causal=causal, position="rotary").double()
    full.load_state_dict(short.state_dict())
    return short, full


@pytest.mark.parametrize(
    "kind, causal",
    [("favor_softmax", False), ("favor_relu", True), ("aft_simple", False), ("aft_conv", True)],
)
def test_long_protein_whole_equals_the_model_on_the_full_sequence(kind, causal):
    from protein_performer.data.alphabet import ALPHABET
    from protein_performer.inference.embed import long_protein_mode, long_protein_policy

    short, full = _rotary_pair(kind, causal)
    seq = "ACDEFGHIKLMNPQRSTVWY" * 3  # 62 tokens with <cls>/<eos>, > max_length 16
    assert long_protein_mode(short) == "whole_long"
    assert long_protein_policy(short).startswith("whole_long: proteins longer than 16 tokens")
    assert window_plan(short, len(seq) + 2) == [(0, 62, 0, 62)]
    emb = embed_long(Engine(short, "cpu"), seq, layers=[0, -1])
    tokens = torch.from_numpy(ALPHABET.wrap(ALPHABET.encode(seq)))[None]
    want = full.hidden_states(tokens, None, [0, -1])
    for got, w in zip(emb.per_residue, want):
        np.testing.assert_allclose(got, w[0, 1:-1].numpy(), rtol=0, atol=1e-6)  # float32 out


@pytest.mark.parametrize(
    "position, kind", [("learned", "favor_softmax"), ("rotary", "exact"), ("rotary", "aft_local")]
)
def test_models_that_cannot_run_long_inputs_still_window(position, kind):
    from protein_performer.inference.embed import long_protein_mode, long_protein_policy

    model = tiny_lm(kind, n_layers=1, max_length=16, position=position).double()
    assert long_protein_mode(model) == "windows"
    assert long_protein_policy(model) == "windows of 16 tokens, stride 8, centered split"
    assert len(window_plan(model, 62)) > 1
    assert embed_long(Engine(model, "cpu"), "ACDEFGHIKLMNPQRSTVWY" * 3).per_residue[0].shape == (
        60,
        16,
    )
