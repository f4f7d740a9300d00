"""Attention layers: padding equivalence, attention matrices, redraw schedule, state dict,
exact attention against a float64 softmax reference."""

import pytest
import torch

from protein_performer.attention import AttentionConfig, FavorAttention, build_attention
from protein_performer.attention.favor.naive import favor_attention_matrix_reference
from protein_performer.attention.reference import exact_attention_reference

KINDS = ["exact", "favor_softmax", "favor_relu"]


def _layer(kind, causal=False, **kw):
    cfg = AttentionConfig(kind=kind, causal=causal, nb_features=32, chunk_size=4, **kw)
    return build_attention(cfg, d_model=16, n_heads=2).double().eval()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("causal", [False, True])
def test_padded_batch_equals_unpadded_sequences(kind, causal):
    layer = _layer(kind, causal)
    lengths = [13, 9, 5]
    x = torch.randn(3, 13, 16, dtype=torch.float64)
    mask = torch.arange(13)[None, :] < torch.tensor(lengths)[:, None]
    x = x.masked_fill(~mask[..., None], 1e3)  # garbage in padding must not matter
    out = layer(x, mask)
    for i, n in enumerate(lengths):
        alone = layer(x[i : i + 1, :n])
        assert torch.allclose(out[i, :n], alone[0], atol=1e-10), (kind, causal, i)


@pytest.mark.parametrize("kind", ["favor_softmax", "favor_relu"])
@pytest.mark.parametrize("causal", [False, True])
def test_left_padding_is_exact_and_gradients_stay_finite(kind, causal):
    layer = _layer(kind, causal).train()
    x = torch.randn(2, 11, 16, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[1, :4] = False  # left padding: causal queries 0..3 have no real key at all
    out = layer(x, mask)
    assert torch.isfinite(out).all()
    alone = layer(x[1:, 4:])
    assert torch.allclose(out[1, 4:], alone[0], atol=1e-10)
    (out * mask[..., None]).pow(2).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[1, :4] == 0).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("causal", [False, True])
def test_attention_matrix_reproduces_the_layer(kind, causal):
    layer = _layer(kind, causal)
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    mask = torch.tensor([[True] * 9, [True] * 6 + [False] * 3])
    mat = layer.attention_matrix(x, mask)  # [B, H, L, L]
    assert mat.shape == (2, 2, 9, 9)
    assert torch.allclose(mat.sum(-1), torch.ones(2, 2, 9, dtype=mat.dtype))
    assert (mat[1, :, :, 6:] == 0).all()
    if causal:
        assert (mat.triu(1) == 0).all()
    q, k, v = layer.project(x)
    # Running the layer's own mechanism equals applying its matrix to the values.
    assert torch.allclose(mat @ v, layer.attend(q, k, v, mask), atol=1e-10)
    if kind.startswith("favor"):
        ref = favor_attention_matrix_reference(
            q, k, layer.projection, kernel=layer.kernel, causal=causal, mask=mask, eps=layer.eps
        )
        assert torch.allclose(mat, ref, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_exact_attention_matches_float64_softmax(causal):
    layer = _layer("exact", causal).float()
    x = torch.randn(2, 12, 16)
    mask = torch.tensor([[True] * 12, [True] * 7 + [False] * 5])
    q, k, v = layer.project(x)
    ref = exact_attention_reference(q, k, v, causal=causal, mask=mask)
    out = layer.attend(q, k, v, mask)
    assert torch.allclose(out[0].double(), ref[0], atol=1e-5)
    assert torch.allclose(out[1, :, :7].double(), ref[1, :, :7], atol=1e-5)
    assert torch.allclose(
        layer.attend(q, k, v, None).double(),
        exact_attention_reference(q, k, v, causal=causal),
        atol=1e-5,
    )
    mat = layer.attention_matrix(x, mask)
    assert torch.allclose((mat @ v)[0].double(), ref[0], atol=1e-5)


def test_redraw_on_schedule_only_in_training():
    layer = _layer("favor_softmax", redraw_interval=3)
    layer.train()
    drawn = []
    for step in range(1, 11):
        before = layer.projection.clone()
        changed = layer.maybe_redraw(step)
        assert changed == (not torch.equal(before, layer.projection))
        if changed:
            drawn.append(step)
    assert drawn == [3, 6, 9]
    assert layer.maybe_redraw(9) is False  # same step twice (gradient accumulation)
    layer.eval()
    before = layer.projection.clone()
    assert not any(layer.maybe_redraw(s) for s in range(1, 13))
    assert torch.equal(before, layer.projection)
    never = _layer("favor_relu", redraw_interval=0).train()
    assert not any(never.maybe_redraw(s) for s in range(1, 20))


def test_assigned_layer_ids_fix_the_draw():
    a, b = _layer("favor_softmax", seed=3), _layer("favor_softmax", seed=3)
    a.assign_layer_id(7)
    b.assign_layer_id(7)
    assert torch.equal(a.projection, b.projection) and int(a.layer_id) == 7
    b.assign_layer_id(8)
    assert not torch.equal(a.projection, b.projection)


def test_draws_depend_only_on_seed_layer_and_step():
    a, b = _layer("favor_softmax", seed=5), _layer("favor_softmax", seed=5)
    assert not torch.equal(a.projection, b.projection)  # distinct layer ids
    b.layer_id.fill_(int(a.layer_id))  # same layer on another rank
    a.redraw(1000)
    b.redraw(1000)
    assert torch.equal(a.projection, b.projection)
    c = _layer("favor_softmax", seed=6)
    c.layer_id.fill_(int(a.layer_id))
    c.redraw(1000)
    assert not torch.equal(a.projection, c.projection)


@pytest.mark.parametrize("kind", ["favor_softmax", "favor_relu"])
def test_state_dict_round_trip(kind):
    layer = _layer(kind, causal=True, redraw_interval=2).train()
    layer.maybe_redraw(2)
    sd = layer.state_dict()
    assert {"projection", "layer_id", "last_redraw_step"} <= set(sd)
    fresh = _layer(kind, causal=True, redraw_interval=2)
    fresh.load_state_dict(sd)
    x = torch.randn(2, 10, 16, dtype=torch.float64)
    layer.eval()
    assert torch.equal(layer(x), fresh(x))
    # A resumed run draws what the uninterrupted one would have drawn.
    layer.train(), fresh.train()
    layer.maybe_redraw(4), fresh.maybe_redraw(4)
    assert torch.equal(layer.projection, fresh.projection)


def test_feature_config_is_honoured():
    layer = _layer("favor_softmax", feature_type="iid", ortho_scaling=1, kernel_eps=1e-4)
    assert isinstance(layer, FavorAttention)
    assert layer.projection.shape == (32, 8) and layer.eps == 1e-4
    relu = _layer("favor_relu")
    assert relu.eps == 1e-3 and relu.kernel.name == "relu"
    scaled = _layer("favor_softmax", ortho_scaling=1)
    assert torch.allclose(
        scaled.projection.norm(dim=1), torch.full((32,), 8**0.5, dtype=torch.float64)
    )


def test_layer_trains_under_autocast():
    layer = _layer("favor_softmax", causal=True).float().train()
    x = torch.randn(2, 10, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    out.float().pow(2).mean().backward()
    assert torch.isfinite(x.grad).all()


def test_build_attention_names_the_registered_kinds():
    # the kind is checked where it is resolved (the registry), not in the config dataclass
    cfg = AttentionConfig(kind="nope", causal=False)
    with pytest.raises(
        ValueError, match=r"attention.kind must be one of \[.*'exact'.*\], got 'nope'"
    ):
        build_attention(cfg, d_model=8, n_heads=2)
