"""AFT variants against direct float64 implementations of the paper's formula."""

import pytest
import torch

from protein_performer.attention import AttentionConfig, build_attention
from protein_performer.attention.aft import causal_prefix_softmax
from protein_performer.attention.aft.naive import (
    aft_reference,
    aft_weights_reference,
    causal_prefix_softmax_quadratic,
    causal_simple_quadratic,
    conv_bias,
    factorised_bias,
    local_bias,
)

L, DH, H = 11, 4, 2
VARIANTS = ["aft_simple", "aft_full", "aft_full_bias", "aft_local", "aft_conv", "aft_conv_even"]


def _layer(variant, causal, max_length=16, randomise=True, **kw):
    kind = {"aft_full_bias": "aft_full", "aft_conv_even": "aft_conv"}.get(variant, variant)
    opts = dict(aft_window=3, aft_factor_dim=3, aft_conv_kernel=5, max_length=max_length)
    opts["aft_full_bias"] = variant == "aft_full_bias"
    if variant == "aft_conv_even":
        opts["aft_conv_kernel"] = 4
    opts.update(kw)
    layer = build_attention(AttentionConfig(kind=kind, causal=causal, **opts), H * DH, H)
    layer = layer.double().eval()
    if randomise:
        torch.manual_seed(123)
        with torch.no_grad():
            for p in layer.parameters():
                p.normal_()
    return layer


def _dense_w(layer, n):
    """The variant's bias built independently from its parameters (reference loops)."""
    kind = layer.cfg.kind
    if kind == "aft_simple":
        return torch.zeros(n, n, dtype=torch.float64)
    if kind == "aft_full":
        if layer.w is not None:
            return layer.w[:n, :n].double()
        return factorised_bias(layer.u, layer.v, n)
    if kind == "aft_local":
        return local_bias(layer.w, layer.window, n)
    return conv_bias(layer.kernel, n, layer.causal)


def _qkv(b=2, n=L, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, H, n, DH, generator=g, dtype=torch.float64) * scale for _ in range(3)]


MASK = torch.tensor([[True] * L, [True] * 7 + [False] * (L - 7)])


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("causal", [False, True])
def test_matches_float64_formula(variant, causal):
    layer = _layer(variant, causal)
    q, k, v = _qkv(scale=2.0)
    w = _dense_w(layer, L)
    for mask in (None, MASK):
        out = layer.attend(q, k, v, mask)
        ref = aft_reference(q, k, v, w, causal=causal, mask=mask)
        assert torch.allclose(out[0], ref[0], atol=1e-12, rtol=1e-10)
        n1 = L if mask is None else 7
        assert torch.allclose(out[1, :, :n1], ref[1, :, :n1], atol=1e-12, rtol=1e-10)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_causal_does_not_see_the_future(variant):
    layer = _layer(variant, causal=True)
    q, k, v = _qkv()
    out = layer.attend(q, k, v, MASK)
    for t in (0, 4, 8):
        k2, v2 = k.clone(), v.clone()
        k2[:, :, t + 1 :] += 5 * torch.randn_like(k2[:, :, t + 1 :])
        v2[:, :, t + 1 :] += 5 * torch.randn_like(v2[:, :, t + 1 :])
        out2 = layer.attend(q, k2, v2, MASK)
        assert (out2[:, :, : t + 1] - out[:, :, : t + 1]).abs().max() < 1e-10


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("causal", [False, True])
def test_padded_batch_equals_unpadded_sequences(variant, causal):
    layer = _layer(variant, causal)
    lengths = [L, 8, 3]
    x = torch.randn(3, L, H * DH, dtype=torch.float64)
    mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]
    x = x.masked_fill(~mask[..., None], 1e3)  # garbage in padding must not matter
    out = layer(x, mask)
    assert torch.isfinite(out).all()
    for i, n in enumerate(lengths):
        assert torch.allclose(out[i, :n], layer(x[i : i + 1, :n])[0], atol=1e-10)


@pytest.mark.parametrize("causal", [False, True])
def test_local_with_window_covering_sequence_equals_full_bias(causal):
    n = 9
    full = _layer("aft_full_bias", causal, max_length=n)
    local = _layer("aft_local", causal, max_length=n, aft_window=n)
    with torch.no_grad():
        local.w.zero_()
        for t in range(n):
            for s in range(n):
                local.w[t, s - t + n - 1] = full.w[t, s]
    q, k, v = _qkv(n=n)
    for mask in (None, MASK[:, :n]):
        assert torch.allclose(local.attend(q, k, v, mask), full.attend(q, k, v, mask), atol=1e-12)


def test_simple_causal_equals_quadratic_form_even_with_huge_key_ranges():
    q, k, v = _qkv(b=2, n=70)
    # Keys spanning hundreds of nats, growing along the sequence: the running maximum jumps
    # from chunk to chunk, so a single global shift would underflow early rows.
    k = k * 30 + torch.linspace(0, 400, 70, dtype=torch.float64)[:, None]
    mask = torch.arange(70)[None, :] < torch.tensor([70, 50])[:, None]
    ref = causal_simple_quadratic(q, k, v, mask)
    for chunk in (None, 4, 16, 128):
        out = torch.sigmoid(q) * causal_prefix_softmax(k, v, mask, chunk=chunk)
        assert torch.allclose(out[0], ref[0], atol=1e-12)
        assert torch.allclose(out[1, :, :50], ref[1, :, :50], atol=1e-12)
    # float32: a 200-nat trend over chunks of 16 (one global shift would underflow the early
    # rows) is exact; only rises of > ~87 nats inside one chunk (256 rows by default) would
    # lose the early rows of that chunk.
    k = k / 10 + torch.linspace(0, 200, 70, dtype=torch.float64)[:, None]
    ref = causal_simple_quadratic(q, k, v, mask)
    out32 = causal_prefix_softmax(k.float(), v.float(), mask, chunk=16)
    assert torch.isfinite(out32).all()
    assert torch.allclose(torch.sigmoid(q[0]) * out32[0].double(), ref[0], atol=1e-4)


def test_full_row_chunks_and_checkpointing_match_reference():
    for causal in (False, True):
        layer = _layer("aft_full", causal)
        layer.row_chunk = 4  # several chunks at L = 11 -> checkpointed path when training
        q, k, v = (t.requires_grad_() for t in _qkv())
        out = layer.attend(q, k, v, MASK)
        ref = aft_reference(q, k, v, factorised_bias(layer.u, layer.v, L), causal, MASK)
        assert torch.allclose(out[0], ref[0], atol=1e-12)
        g = torch.autograd.grad(out[0].sum(), (q, k, v, layer.u, layer.v))
        gr = torch.autograd.grad(ref[0].sum(), (q, k, v, layer.u, layer.v))
        for a, b in zip(g, gr):
            assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("variant", ["aft_simple", "aft_full", "aft_local", "aft_conv"])
@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck(variant, causal):
    layer = _layer(variant, causal, max_length=5)
    q, k, v = (t[..., :1].requires_grad_() for t in _qkv(b=1, n=5))  # tiny: 10 inputs each
    mask = torch.tensor([[True] * 4 + [False]])
    assert torch.autograd.gradcheck(lambda a, b, c: layer.attend(a, b, c, mask), (q, k, v))
    # The bias parameters' gradients equal those of the reference formula.
    params = [p for p in layer.parameters() if p.dim() == 2 and p.shape[0] != H * DH]
    if not params:
        return
    out = layer.attend(q, k, v, mask)[..., :4, :].sum()
    ref = aft_reference(q, k, v, _dense_w(layer, 5), causal, mask)[..., :4, :].sum()
    for a, b in zip(torch.autograd.grad(out, params), torch.autograd.grad(ref, params)):
        assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("causal", [False, True])
def test_attention_matrix(variant, causal):
    layer = _layer(variant, causal)
    x = torch.randn(2, L, H * DH, dtype=torch.float64)
    mat = layer.attention_matrix(x, MASK)
    assert mat.shape == (2, H, L, L)
    assert torch.allclose(mat.sum(-1), torch.ones(2, H, L, dtype=torch.float64))
    assert (mat[1, :, :, 7:] == 0).all()
    if causal:
        assert (mat.triu(1) == 0).all()
    q, k, v = layer.project(x)
    per = layer.attend_matrix_per_channel(q, k, MASK)  # [B, H, Dh, L, L]
    assert torch.allclose(per, aft_weights_reference(k, _dense_w(layer, L), causal, MASK))
    assert torch.allclose(per.mean(2), mat)
    # Applied per channel to V, the matrices give the output before the sigmoid gate.
    avg = (per @ v.transpose(-1, -2)[..., None]).squeeze(-1).transpose(-1, -2)
    assert torch.allclose(torch.sigmoid(q) * avg, layer.attend(q, k, v, MASK), atol=1e-12)


@pytest.mark.parametrize("variant", ["aft_full", "aft_full_bias", "aft_local"])
def test_length_limit_of_learned_tables(variant):
    layer = _layer(variant, causal=False, max_length=8)
    q, k, v = _qkv(b=1, n=9)
    with pytest.raises(ValueError, match=r"attention\.max_length=8.*model\.max_length"):
        layer.attend(q, k, v, None)


@pytest.mark.parametrize("variant", ["aft_simple", "aft_conv"])
def test_no_length_limit_without_tables(variant):
    layer = _layer(variant, causal=True, max_length=8)
    q, k, v = _qkv(b=1, n=20)
    assert torch.isfinite(layer.attend(q, k, v, None)).all()


@pytest.mark.parametrize("variant", ["aft_full", "aft_full_bias", "aft_local", "aft_conv"])
@pytest.mark.parametrize("causal", [False, True])
def test_initialisation_starts_as_aft_simple(variant, causal):
    layer = _layer(variant, causal, randomise=False)
    simple = _layer("aft_simple", causal, randomise=False)
    q, k, v = _qkv()
    assert torch.allclose(layer.attend(q, k, v, MASK), simple.attend(q, k, v, MASK), atol=1e-12)
    if variant == "aft_full":  # both factors must be trainable from the start
        out = layer.attend(q, k, v, MASK).sum()
        _, gv = torch.autograd.grad(out, (layer.u, layer.v))
        assert gv.abs().sum() > 0


@pytest.mark.parametrize("variant", ["aft_simple", "aft_full", "aft_local", "aft_conv"])
def test_autocast_computes_in_float32(variant):
    layer = _layer(variant, causal=True).float()
    q, k, v = (t.float() for t in _qkv())
    ref = layer.attend(q, k, v, MASK)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer.attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), MASK)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    assert torch.allclose(out.float(), ref, atol=0.05)


@pytest.mark.parametrize("variant", ["aft_simple", "aft_local", "aft_conv"])
def test_large_positive_biases_do_not_overflow(variant):
    layer = _layer(variant, causal=False).float()
    with torch.no_grad():
        for p in layer.parameters():
            if p.dim() == 2 and p.shape[0] != H * DH:
                p.abs_().mul_(10.0).add_(90.0)  # exp(w) overflows float32 unshifted
    q, k, v = (t.float() * 3 for t in _qkv())
    out = layer.attend(q, k, v, MASK)
    assert torch.isfinite(out).all()
    ref = aft_reference(q, k, v, _dense_w(layer, L), mask=MASK)
    assert torch.allclose(out[0].double(), ref[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("variant", ["aft_conv", "aft_conv_even"])
@pytest.mark.parametrize("causal", [False, True])
def test_conv_across_blocks(variant, causal):
    """AFT-conv runs in blocks of rows (32): outputs and all gradients (kernel included) over
    several blocks and a partial last block match the reference formula."""
    n = 75
    layer = _layer(variant, causal, max_length=n)
    q, k, v = (t.requires_grad_() for t in _qkv(b=2, n=n, seed=3))
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, 50:] = False
    out = layer.attend(q, k, v, mask)
    ref = aft_reference(q, k, v, _dense_w(layer, n), causal=causal, mask=mask)
    keep = mask[:, None, :, None].expand_as(out)  # outputs at padded queries are unspecified
    assert torch.allclose(out[keep], ref[keep], atol=1e-12, rtol=1e-10)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(4), dtype=out.dtype)
    inputs = (q, k, v, layer.kernel)
    grads = torch.autograd.grad((out * g * keep).sum(), inputs)
    refs = torch.autograd.grad((ref * g * keep).sum(), inputs)
    for a, b in zip(grads, refs):
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-9)


# ----------------------------------------------------------------------------- causal scan
# causal_prefix_softmax (AFT-simple causal): chunked scan with a hand-written backward.


def _keys_values(b, n, d=3, scale=2.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(b, H, n, d, generator=g, dtype=torch.float64) * scale
    v = torch.randn(b, H, n, d, generator=g, dtype=torch.float64)
    return k.to(dtype), v.to(dtype)


def _scan_mask(n):
    """A batch of 4: no padding, right padding, left padding, all padded."""
    mask = torch.ones(4, n, dtype=torch.bool)
    mask[1, (n + 1) // 2 :] = False
    mask[2, : n // 2] = False
    mask[3] = False
    return mask


def _no_key_rows(mask, n):
    """[B, 1, L, 1]: rows that see no real key (their output is 0)."""
    if mask is None:
        return torch.zeros(1, 1, n, 1, dtype=torch.bool)
    return (mask.cumsum(-1) == 0)[:, None, :, None]


@pytest.mark.parametrize("n", [1, 5, 16, 17, 45])
@pytest.mark.parametrize("chunk", [None, 1, 4, 16])
def test_causal_scan_matches_quadratic_reference(n, chunk):
    k, v = _keys_values(4, n)
    for mask in (None, _scan_mask(n)):
        ref = causal_prefix_softmax_quadratic(k, v, mask)
        out = causal_prefix_softmax(k, v, mask, chunk=chunk)
        assert torch.allclose(out, ref, atol=1e-12, rtol=1e-12)
        assert (out.masked_select(_no_key_rows(mask, n)) == 0).all()
        # The autograd path computes the same forward; strided [B, L, H, Dh] inputs (as the
        # projections give) work, and the output keeps their layout.
        kt, vt = (t.transpose(1, 2).contiguous().transpose(1, 2).requires_grad_() for t in (k, v))
        out_t = causal_prefix_softmax(kt, vt, mask, chunk=chunk)
        assert torch.equal(out_t.detach(), out) and out_t.stride() == vt.stride()


@pytest.mark.parametrize("masked", [False, True])
def test_causal_scan_gradcheck(masked):
    n = 11  # chunks of 4: two full, one partial
    k, v = _keys_values(4 if masked else 2, n, d=2, scale=3.0)
    k = k + torch.linspace(-8, 8, n, dtype=torch.float64)[:, None]  # maxima grow: rescaled carries
    mask = _scan_mask(n) if masked else None
    k.requires_grad_()
    v.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: causal_prefix_softmax(a, b, mask, chunk=4), (k, v))


def test_causal_scan_gradients_match_reference_over_many_chunks():
    n = 75
    k, v = _keys_values(4, n, scale=3.0, seed=1)
    mask = _scan_mask(n)
    g = torch.randn(k.shape, generator=torch.Generator().manual_seed(2), dtype=k.dtype)
    kr, vr = k.clone().requires_grad_(), v.clone().requires_grad_()
    refs = torch.autograd.grad((causal_prefix_softmax_quadratic(kr, vr, mask) * g).sum(), (kr, vr))
    for chunk in (None, 8, 32):
        kk, vv = k.clone().requires_grad_(), v.clone().requires_grad_()
        out = causal_prefix_softmax(kk, vv, mask, chunk)
        for a, b in zip(torch.autograd.grad((out * g).sum(), (kk, vv)), refs):
            assert torch.allclose(a, b, atol=1e-11, rtol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_causal_scan_padding_gives_zeros_never_nan(dtype):
    """Padded keys (finite garbage) have no effect and zero gradients; rows that see no real
    key (more than a chunk of left padding, an all-padded sequence) give 0 and no NaN, also
    with upstream gradients ~100 (where |g| / tiny overflows: a clamped D would give inf * 0)."""
    n, chunk = 40, 8
    k, v = _keys_values(4, n, dtype=dtype)
    mask = _scan_mask(n)
    pad = ~mask[:, None, :, None]
    k, v = k.masked_fill(pad, 1e3), v.masked_fill(pad, -1e3)
    with torch.no_grad():
        out0 = causal_prefix_softmax(k, v, mask, chunk)
    k.requires_grad_()
    v.requires_grad_()
    out = causal_prefix_softmax(k, v, mask, chunk)
    assert torch.equal(out.detach(), out0) and torch.isfinite(out0).all()
    assert (out0.masked_select(_no_key_rows(mask, n)) == 0).all()
    ref = causal_prefix_softmax_quadratic(k.detach(), v.detach(), mask)
    assert torch.allclose(out0.double(), ref, atol=1e-5 if dtype == torch.float32 else 1e-12)
    g = 100 * torch.randn(out.shape, generator=torch.Generator().manual_seed(5)).to(dtype)
    gk, gv = torch.autograd.grad((out * g).sum(), (k, v))
    assert torch.isfinite(gk).all() and torch.isfinite(gv).all()
    assert (gk.masked_select(pad) == 0).all() and (gv.masked_select(pad) == 0).all()


def test_causal_scan_stable_under_large_key_spreads():
    """Keys 400 apart across chunks (a later chunk far above the earlier ones, and back down)
    and, in float64, within a chunk: outputs and gradients equal the float64 reference."""
    n, chunk = 48, 8
    k, v = _keys_values(2, n, scale=5.0, seed=3)
    offsets = torch.tensor([-200.0, 200.0, -150.0, 0.0, 180.0, -200.0], dtype=torch.float64)
    k = k + offsets.repeat_interleave(chunk)[:, None]
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, 30:] = False
    g = torch.randn(k.shape, generator=torch.Generator().manual_seed(4), dtype=k.dtype)

    def run(keys, dtype):
        kk, vv = keys.to(dtype).requires_grad_(), v.to(dtype).requires_grad_()
        out = causal_prefix_softmax(kk, vv, mask, chunk)
        return (out, *torch.autograd.grad((out * g.to(dtype)).sum(), (kk, vv)))

    def reference(keys):
        kk, vv = keys.clone().requires_grad_(), v.clone().requires_grad_()
        out = causal_prefix_softmax_quadratic(kk, vv, mask)
        return (out, *torch.autograd.grad((out * g).sum(), (kk, vv)))

    k_in = k.clone()
    k_in[:, :, 13] += 400.0  # inside chunk 1: a key far above the earlier ones of its chunk
    for keys in (k, k_in):
        for a, b in zip(run(keys, torch.float64), reference(keys)):
            assert torch.isfinite(a).all() and torch.allclose(a, b, atol=1e-12, rtol=1e-10)
    # float32 (jumps between chunks only; inside a chunk the keys span ~40)
    for a, b in zip(run(k, torch.float32), reference(k)):
        assert torch.isfinite(a).all() and torch.allclose(a.double(), b, atol=1e-4, rtol=1e-4)


def test_causal_scan_saves_only_linear_state():
    """For backward: k, v, the output and 1 / D (plus the [B, H, 1, Dh] chunk maxima)."""
    k, v = (t.requires_grad_() for t in _keys_values(2, 300))
    saved = []
    hooks = torch.autograd.graph.saved_tensors_hooks(
        lambda t: saved.append(t.numel()) or t, lambda t: t
    )
    with hooks:
        causal_prefix_softmax(k, v, None, chunk=16)
    assert saved and max(saved) == k.numel() and sum(saved) == 4 * k.numel()


def test_causal_scan_rejects_a_chunk_below_one():
    k = v = torch.zeros(1, 1, 4, 2)
    with pytest.raises(ValueError, match="chunk must be positive, got 0"):
        causal_prefix_softmax(k, v, None, chunk=0)
