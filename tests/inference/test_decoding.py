"""Token-by-token decoding equals the full causal forward (float64, 1e-10) for every kind."""

from __future__ import annotations

import pytest
import torch
from common import tiny_lm

from protein_performer.attention.favor.decoding import favor_init_state, favor_softmax_step
from protein_performer.attention.favor.layer import favor_attention
from protein_performer.attention.favor.naive import favor_attention_reference
from protein_performer.inference.decoder import RecurrentDecoder
from protein_performer.model.lm import PerformerLM

CAUSAL_KINDS = [
    "exact",
    "favor_softmax",
    "favor_relu",
    "aft_simple",
    "aft_full",
    "aft_local",
    "aft_conv",
]


def _model(kind: str, position: str, seed: int = 0) -> PerformerLM:
    layer = {"chunk_size": 8, "aft_window": 5, "aft_conv_kernel": 4}
    model = tiny_lm(
        kind, seed=seed, attention=layer, max_length=80, causal=True, position=position
    ).double()
    with torch.no_grad():  # non-trivial weights: AFT biases start at 0 otherwise
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rotary", "none"])
@pytest.mark.parametrize("kind", CAUSAL_KINDS)
@pytest.mark.parametrize("length", [1, 7, 21, 80])  # crossing chunk 8, AFT window 5 / kernel 4
def test_step_logits_equal_full_forward(kind: str, position: str, length: int) -> None:
    model = _model(kind, position)
    tokens = torch.randint(6, 26, (3, length), generator=torch.Generator().manual_seed(1))
    full = model(tokens)
    dec = RecurrentDecoder(model, 3)
    steps = torch.stack([dec.step(tokens[:, t]) for t in range(length)], dim=1)
    torch.testing.assert_close(steps, full, rtol=0, atol=1e-10)


def test_favor_running_max_grows() -> None:
    """Keys of growing norm raise the running maximum step after step: the carried state is
    rescaled and the eps part carried apart, matching the float64 no-lookahead reference."""
    g = torch.Generator().manual_seed(0)
    b, h, n, d, m = 2, 2, 40, 8, 16
    q, k, v = (torch.randn(b, h, n, d, generator=g, dtype=torch.float64) for _ in range(3))
    k = k * torch.linspace(0.2, 3.0, n, dtype=torch.float64)[:, None]
    w = torch.randn(m, d, generator=g, dtype=torch.float64)
    state = favor_init_state(b, h, m, d, q.device, q.dtype)
    maxima, out = [], []
    for t in range(n):
        out.append(
            favor_softmax_step(
                q[:, :, t : t + 1], k[:, :, t : t + 1], v[:, :, t : t + 1], w, state, eps=1e-3
            )
        )
        maxima.append(state.run_max.clone())
    out = torch.cat(out, dim=2)
    assert sum(bool((b2 > a).any()) for a, b2 in zip(maxima, maxima[1:])) > n // 4
    ref = favor_attention_reference(q, k, v, w, causal=True, eps=1e-3)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    fwd = favor_attention(q, k, v, w, causal=True, chunk_size=8, eps=1e-3)
    torch.testing.assert_close(out, fwd, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["favor_softmax", "favor_relu", "aft_simple"])
def test_state_size_does_not_grow(kind: str) -> None:
    model = _model(kind, "rotary")
    dec = RecurrentDecoder(model, 2)
    dec.step(torch.full((2,), 2))
    shapes = [[tuple(t.shape) for t in s.tensors()] for s in dec.states]
    for _ in range(60):
        dec.step(torch.full((2,), 7))
    assert [[tuple(t.shape) for t in s.tensors()] for s in dec.states] == shapes


def test_bounded_cache_for_local_and_conv() -> None:
    for kind, bound in (("aft_local", 5), ("aft_conv", 4)):
        dec = RecurrentDecoder(_model(kind, "learned"), 1)
        for _ in range(30):
            dec.step(torch.full((1,), 7))
        assert all(s.keys.shape[-2] == bound for s in dec.states)


def test_bidirectional_model_is_refused() -> None:
    model = tiny_lm("favor_softmax", n_layers=1, max_length=32)
    with pytest.raises(ValueError, match="objective=clm"):
        RecurrentDecoder(model, 1)
    layer = model.blocks[0].attn
    with pytest.raises(ValueError, match="bidirectional"):
        layer.init_state(1, torch.device("cpu"), torch.float32)


def test_past_max_length_is_refused() -> None:
    dec = RecurrentDecoder(_model("aft_simple", "learned"), 1)
    for _ in range(80):
        dec.step(torch.full((1,), 7))
    with pytest.raises(ValueError, match="max_length"):
        dec.step(torch.full((1,), 7))
