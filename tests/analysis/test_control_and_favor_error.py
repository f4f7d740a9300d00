"""The random-init null of the BLOSUM analysis and the FAVOR+ approximation diagnostic."""

from __future__ import annotations

import math

import pytest
import torch
from common import tiny_lm

from protein_performer.analysis.control import control_summary, random_init_like
from protein_performer.analysis.favor_error import (
    approximation_errors,
    capture_qkv,
    exact_matrix,
    plot_errors,
    protein_batch,
)
from protein_performer.model.lm import PerformerLM

SEQS = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "ACDEFGHIKLMNPQRSTVWYACDEFG"]


def _model(kind: str = "exact", causal: bool = False, position: str = "learned") -> PerformerLM:
    return tiny_lm(
        kind, seed=None, d_model=32, d_ff=64, max_length=48, causal=causal, position=position
    )


def test_random_init_like_same_config_fresh_seeded_weights():
    trained = _model("favor_relu")
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)  # "training"
    a, b = random_init_like(trained, seed=3), random_init_like(trained, seed=3)
    assert a.cfg == trained.cfg and not a.training
    for (name, pa), pb, pt in zip(
        a.state_dict().items(), b.state_dict().values(), trained.state_dict().values()
    ):
        assert torch.equal(pa, pb), name  # seeded: the same control every time
        if pa.is_floating_point() and pa.numel() > 1 and "projection" not in name:
            assert not torch.equal(pa, pt), name  # none of the trained weights
    c = random_init_like(trained, seed=4)
    assert not torch.equal(c.token_embedding.weight, a.token_embedding.weight)
    # the global RNG is left alone
    state = torch.random.get_rng_state()
    random_init_like(trained, seed=5)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize(
    "t,c,p,beats",
    [
        (0.4, 0.05, 0.001, True),
        (0.4, 0.05, 0.02, False),
        (0.1, 0.2, 0.001, False),
        (None, 0.1, 0.5, False),
    ],
)
def test_control_summary(t, c, p, beats):
    s = control_summary({"pearson": t, "permutation_p": p}, {"pearson": c, "permutation_p": 0.5})
    assert s["beats_control"] is beats
    assert s["difference"] == (None if t is None else pytest.approx(t - c))


@pytest.mark.parametrize("causal", [False, True])
def test_captured_qkv_are_the_models_own(causal):
    model = _model("exact", causal).double()
    tokens, mask = protein_batch(SEQS, 48)
    assert tokens.shape == (2, len(SEQS[0]) + 2) and mask.sum() == sum(len(s) + 2 for s in SEQS)
    qkv = capture_qkv(model, tokens, mask)
    assert len(qkv) == 2
    # layer 0's output equals exact attention on the captured q, k, v
    q, k, v = qkv[0]
    attn = model.blocks[0].attn
    ref = attn.attend(q, k, v, mask)
    mine = exact_matrix(q, k, mask, causal) @ v
    real = mask[:, None, :, None]
    assert torch.allclose((ref * real), (mine * real), atol=1e-10)


def test_favor_error_falls_with_features_and_orthogonal_helps():
    torch.manual_seed(0)
    model = _model("exact", position="rotary").double()
    tokens, mask = protein_batch(SEQS, 48)
    qkv = capture_qkv(model, tokens, mask)
    table = approximation_errors(qkv, mask, False, nb_features=(8, 512), n_draws=3)
    assert len(table) == 2 * 2 * 2 * 3  # layers x types x m x draws
    err = table.groupby(["feature_type", "nb_features"])["output_rel_error"].mean()
    for ftype in ("orthogonal", "iid"):
        # the estimator's error falls like m^-1/2: 64x the features, ~8x smaller error
        assert err[ftype, 512] < err[ftype, 8] / 4
    assert (table["output_rel_error"] > 0).all() and (table["matrix_abs_error"] > 0).all()


def test_favor_error_plot(tmp_path):
    model = _model("exact")
    tokens, mask = protein_batch(SEQS, 48)
    table = approximation_errors(
        capture_qkv(model, tokens, mask), mask, False, nb_features=(8, 16), n_draws=2
    )
    paths = plot_errors(table, tmp_path / "favor_error")
    assert [p[-3:] for p in paths] == ["png", "pdf"]
    assert (tmp_path / "favor_error.png").read_bytes()[:4] == b"\x89PNG"
    assert math.isfinite(table["output_rel_error"].mean())


def test_errors_on_source_leaves_the_model_float32():
    import numpy as np

    from protein_performer.analysis.favor_error import errors_on_source
    from protein_performer.data.alphabet import ALPHABET
    from protein_performer.data.source import InMemoryProteins

    model = _model("exact")
    encoded = [ALPHABET.encode(s).astype(np.uint8) for s in SEQS]
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)
    source = InMemoryProteins(np.concatenate(encoded), offsets, ["a", "b"])
    table = errors_on_source(model, source, n_proteins=2, nb_features=(8,), seed=0)
    assert set(table["layer"]) == {0, 1} and (table["output_rel_error"] > 0).all()
    assert next(model.parameters()).dtype == torch.float32
