"""PerformerLM: shapes, config validation, causality, padding invariance, init, precision."""

from __future__ import annotations

import math

import pytest
import torch
from common import tiny_lm

from protein_performer.attention import AttentionConfig
from protein_performer.data.alphabet import ALPHABET
from protein_performer.model import ModelConfig, PerformerLM

KINDS = ["exact", "favor_softmax", "favor_relu"]
V = len(ALPHABET)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(kind: str = "exact", **kw) -> PerformerLM:
    return tiny_lm(kind, attention={"chunk_size": 4}, d_model=32, d_ff=64, max_length=48, **kw)


def proteins(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(
        int(ALPHABET.standard_idx[0]),
        int(ALPHABET.standard_idx[-1]) + 1,
        (batch, length),
        generator=g,
    )
    t[:, 0] = ALPHABET.cls_idx
    t[:, -1] = ALPHABET.eos_idx
    return t


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rotary"])
@pytest.mark.parametrize("kind", KINDS)
def test_shapes(kind, position):
    model = tiny(kind, position=position)
    t = proteins(3, 17)
    mask = torch.ones_like(t, dtype=torch.bool)
    assert model(t, mask).shape == (3, 17, V)
    assert model(t).shape == (3, 17, V)
    maps = model.attention_maps(t, mask)
    assert len(maps) == 2 and all(m.shape == (3, 2, 17, 17) for m in maps)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(3, 2, 17), atol=1e-4, rtol=0)
    last = model.attention_maps(t, mask, layers=[-1])
    torch.testing.assert_close(last[0], maps[1])


def test_attention_maps_match_a_manual_pass():
    model = tiny("exact")
    t = proteins(2, 9)
    mask = torch.ones_like(t, dtype=torch.bool)
    x = model.embed(t)
    x = model.blocks[0](x, mask)
    h = model.blocks[1].norm1(x)
    q, k, _ = model.blocks[1].attn.project(h)
    ref = torch.softmax(q.double() @ k.double().transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
    got = model.attention_maps(t, mask, layers=[1])[0]
    torch.testing.assert_close(got.double(), ref, atol=1e-5, rtol=1e-5)
    assert not model.training


def test_max_length_error():
    model = tiny()
    with pytest.raises(ValueError, match=r"sequence length 49 exceeds model.max_length 48; crop"):
        model(proteins(1, 49))


def test_config_validation_and_the_model_deciding_causal_and_max_length():
    exact = AttentionConfig(kind="exact")
    with pytest.raises(
        ValueError, match=r"model.d_model \(100\) must be divisible by model.n_heads \(3\)"
    ):
        ModelConfig(d_model=100, n_heads=3, attention=exact)
    with pytest.raises(ValueError, match="model.position must be one of"):
        ModelConfig(position="alibi", attention=exact)
    with pytest.raises(ValueError, match=r"model.position=none needs a causal model"):
        ModelConfig(position="none", causal=False, attention=exact)
    with pytest.raises(ValueError, match="attention.kind must be one of"):
        ModelConfig.from_dict({"attention": {"kind": "nope"}})
    with pytest.raises(ValueError, match="model.n_layers must be a positive integer"):
        ModelConfig(n_layers=0, attention=exact)
    with pytest.raises(ValueError, match="attention: unknown field"):
        ModelConfig.from_dict({"attention": {"kind": "exact", "bogus": 1}})
    with pytest.raises(TypeError, match=r"model.attention must be an AttentionConfig.*from_dict"):
        ModelConfig(attention={"kind": "exact"})
    # unset in the attention config: the model's values, in a new config (the given one stays)
    cfg = ModelConfig(causal=True, max_length=77, attention=exact)
    assert cfg.attention.causal is True and cfg.attention.max_length == 77
    assert exact.causal is None and exact.max_length is None
    # set: they must agree, never silently overwritten
    agreeing = AttentionConfig(kind="exact", causal=True, max_length=77)
    assert ModelConfig(causal=True, max_length=77, attention=agreeing).attention is agreeing
    with pytest.raises(
        ValueError, match=r"attention.causal \(False\) disagrees with model.causal \(True\)"
    ):
        ModelConfig(causal=True, attention=AttentionConfig(kind="exact", causal=False))
    with pytest.raises(
        ValueError, match=r"attention.max_length \(64\) disagrees with model.max_length \(77\)"
    ):
        ModelConfig(max_length=77, attention=AttentionConfig(kind="exact", max_length=64))
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rotary", "none"])
@pytest.mark.parametrize("kind", KINDS)
def test_causal_model_does_not_see_the_future(kind, position):
    model = tiny(kind, causal=True, position=position).double()
    t = proteins(2, 20)
    mask = torch.ones_like(t, dtype=torch.bool)
    base = model(t, mask)
    for cut in (1, 7, 18):
        changed = t.clone()
        # every later token becomes another one
        changed[:, cut + 1 :] = (t[:, cut + 1 :] - 5) % 20 + 6
        out = model(changed, mask)
        torch.testing.assert_close(out[:, : cut + 1], base[:, : cut + 1], atol=1e-10, rtol=1e-10)
        assert not torch.allclose(out[:, cut + 1 :], base[:, cut + 1 :])


@pytest.mark.parametrize("causal", [False, True])
def test_padding_invariance(causal):
    model = tiny("exact", causal=causal).double()
    t = proteins(2, 12)
    mask = torch.ones_like(t, dtype=torch.bool)
    ref = model(t, mask)
    padded = torch.full((2, 20), ALPHABET.pad_idx, dtype=torch.long)
    padded[:, :12] = t
    pmask = torch.zeros(2, 20, dtype=torch.bool)
    pmask[:, :12] = True
    out = model(padded, pmask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[:, :12], ref, atol=1e-10, rtol=1e-10)


def test_tied_head_and_init():
    model = tiny_lm("exact", seed=None, d_model=64, n_layers=8, n_heads=4, d_ff=128)
    assert model.head is None
    assert (
        sum(p.data_ptr() == model.token_embedding.weight.data_ptr() for p in model.parameters())
        == 1
    )
    scaled = 0.02 / math.sqrt(16)
    for block in model.blocks:
        assert block.ff.fc2.weight.std().item() == pytest.approx(scaled, rel=0.15)
        assert block.attn.to_out.weight.std().item() == pytest.approx(scaled, rel=0.15)
        assert block.ff.fc1.weight.std().item() == pytest.approx(0.02, rel=0.1)
        assert torch.all(block.ff.fc1.bias == 0)
    untied = tiny_lm("exact", seed=None, d_model=32, tie_embeddings=False)
    assert untied.head is not None and untied(proteins(1, 5)).shape == (1, 5, V)


def test_identical_configs_draw_identical_features():
    a, b = tiny("favor_relu"), tiny("favor_relu")
    t = proteins(2, 10)
    torch.testing.assert_close(a(t), b(t))


def test_redraw_features_counts_layers():
    model = tiny("favor_relu").train()
    interval = model.blocks[0].attn.cfg.redraw_interval
    assert model.redraw_features(interval) == 2
    assert model.redraw_features(interval) == 0  # once per step (gradient accumulation)
    assert model.redraw_features(interval + 1) == 0
    assert tiny("exact").train().redraw_features(interval) == 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", KINDS)
def test_autocast_matches_float32(kind, dtype):
    model = tiny(kind)
    t = proteins(2, 24)
    mask = torch.ones_like(t, dtype=torch.bool)
    ref = torch.log_softmax(model(t, mask), -1)
    with torch.autocast("cpu", dtype=dtype):
        out = model(t, mask)
    assert torch.isfinite(out).all()
    got = torch.log_softmax(out.float(), -1)
    assert (got - ref).abs().max().item() < 0.1


def test_rotary_matches_complex_rotation_and_is_relative():
    from protein_performer.model import RotaryEmbedding

    rope = RotaryEmbedding(8, 64).double()
    x = torch.randn(2, 3, 10, 8, dtype=torch.float64)
    got = rope(x)
    # reference: pairs (x_i, x_{i+4}) rotated by angle pos * base^(-2i/8), as complex numbers
    pos = torch.arange(10, dtype=torch.float64)[:, None]
    theta = pos * 10000.0 ** (-torch.arange(4, dtype=torch.float64) * 2 / 8)
    z = torch.complex(x[..., :4], x[..., 4:]) * torch.polar(torch.ones_like(theta), theta)
    torch.testing.assert_close(got, torch.cat([z.real, z.imag], -1))
    # scores depend on the offset only: <R_i q, R_j k> == <R_{i+s} q, R_{j+s} k>
    q, k = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    seq = torch.zeros(1, 1, 10, 8, dtype=torch.float64)
    seq[..., 2, :], seq[..., 5, :] = q, k
    r = rope(seq)
    shifted = torch.zeros_like(seq)
    shifted[..., 6, :], shifted[..., 9, :] = q, k
    rs = rope(shifted)
    assert torch.dot(r[0, 0, 2], r[0, 0, 5]).item() == pytest.approx(
        torch.dot(rs[0, 0, 6], rs[0, 0, 9]).item()
    )


def test_rotary_beyond_its_cached_length_equals_a_longer_table():
    from protein_performer.model import RotaryEmbedding

    x = torch.randn(2, 3, 40, 8)
    torch.testing.assert_close(RotaryEmbedding(8, 16)(x), RotaryEmbedding(8, 64)(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "position, kind, whole",
    [
        ("rotary", "favor_softmax", True),
        ("rotary", "aft_simple", True),
        ("rotary", "aft_conv", True),
        ("rotary", "exact", False),
        ("rotary", "aft_local", False),
        ("rotary", "aft_full", False),
        ("learned", "favor_softmax", False),
    ],
)
def test_longer_inputs_only_when_positions_and_attention_allow(position, kind, whole):
    model = tiny_lm(kind, seed=None, attention={"nb_features": 8}, max_length=16, position=position)
    assert model.runs_any_length is whole
    tokens = torch.randint(6, 26, (1, 20))
    with pytest.raises(ValueError, match="sequence length 20 exceeds model.max_length 16; crop"):
        model.hidden_states(tokens)  # the default contract is unchanged
    if whole:
        assert model.hidden_states(tokens, any_length=True)[0].shape == (1, 20, 16)
    else:
        with pytest.raises(ValueError, match=f"attention={kind}\\) cannot run longer inputs whole"):
            model.hidden_states(tokens, any_length=True)


def test_sinusoidal_positions_are_the_fixed_table_times_one_learned_scale():
    from protein_performer.model.embeddings import SinusoidalPositions

    pos = SinusoidalPositions(max_length=50, d_model=10, init_rms=0.02)
    table = pos(50) / pos.scale
    t, i = 37, 3  # pair (6, 7): sin, cos of t / 10000^(6/10)
    angle = t / 10000 ** (2 * i / 10)
    assert table[t, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
    assert table[t, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    # the learned table's scale at init: every entry RMS 0.02
    assert pos(50).pow(2).mean().sqrt().item() == pytest.approx(0.02, rel=1e-6)
    torch.testing.assert_close(pos.at(t), pos(50)[t])
    # the table is derived: only the scale is a parameter and in the state dict
    assert [n for n, _ in pos.named_parameters()] == ["scale"]
    assert set(pos.state_dict()) == {"scale"}
    with torch.no_grad():
        pos.scale.mul_(3.0)
    pos.reset_parameters()
    assert pos(50).pow(2).mean().sqrt().item() == pytest.approx(0.02, rel=1e-6)
    odd = SinusoidalPositions(max_length=4, d_model=7)  # an odd width ends with a sine
    assert odd(4).shape == (4, 7)


def test_no_positions_adds_nothing_to_the_token_embeddings():
    model = tiny("exact", causal=True, position="none")
    t = proteins(2, 9)
    assert model.positions is None and model.rotary is None
    torch.testing.assert_close(model.embed(t), model.token_embedding(t))
