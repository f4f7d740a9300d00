"""FAVOR+ fast paths against the naive float64 references (fresh random inputs each run)."""

import math

import pytest
import torch

from protein_performer.attention import (
    favor_attention,
    favor_attention_matrix,
    gaussian_orthogonal_random_matrix,
)
from protein_performer.attention.favor.naive import (
    favor_attention_matrix_reference,
    favor_attention_reference,
)
from protein_performer.attention.reference import exact_attention_reference

KERNELS = ["softmax", "relu"]


def _qkv(b=2, h=2, length=19, d=8, dv=None, dtype=torch.float64, scale=1.0):
    dv = d if dv is None else dv
    q = torch.randn(b, h, length, d, dtype=dtype) * scale
    k = torch.randn(b, h, length, d, dtype=dtype) * scale
    v = torch.randn(b, h, length, dv, dtype=dtype)
    return q, k, v


def _padding_mask(b, length):
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[-1, length - length // 3 :] = False  # right padding in the last sequence
    return mask


@pytest.fixture(params=["cpp", "loop", "chunkwise"])
def causal_impl(request, monkeypatch):
    """The causal softmax/ReLU kernels run by each implementation (favor_causal.CAUSAL_IMPLS):
    the C++ CPU kernel, the Python chunk loop and the chunk-parallel (GPU) form, chosen where
    the dispatch chooses ("auto" on CPU), so every test through favor_attention runs it."""
    from protein_performer.attention.favor import (
        causal as favor_causal,
    )
    from protein_performer.attention.favor import (
        causal_cpu as favor_causal_cpu,
    )

    if request.param == "loop":
        monkeypatch.setattr(favor_causal_cpu, "usable", lambda q: False)
    elif request.param == "chunkwise":
        monkeypatch.setitem(favor_causal.AUTO_IMPL, "cpu", "chunkwise")
    else:
        request.getfixturevalue("cpp_kernel")  # a failed build fails; no compiler skips
    for dtype in (torch.float32, torch.float64):
        assert favor_causal.resolve_impl("auto", torch.zeros(1, dtype=dtype)) == request.param
    return request.param


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 7, 19, 64])
@pytest.mark.parametrize("masked", [False, True])
def test_fast_path_equals_reference(kernel, causal, chunk, masked, causal_impl):
    q, k, v = _qkv(length=19, dv=5)
    w = gaussian_orthogonal_random_matrix(12, 8, dtype=torch.float64)
    mask = _padding_mask(2, 19) if masked else None
    out = favor_attention(q, k, v, w, kernel=kernel, causal=causal, mask=mask, chunk_size=chunk)
    ref = favor_attention_reference(q, k, v, w, kernel=kernel, causal=causal, mask=mask)
    assert out.shape == v.shape and out.dtype == torch.float64
    assert torch.allclose(out, ref, atol=1e-12, rtol=1e-10)


def test_pluggable_kernel_function():
    q, k, v = _qkv(length=10)
    w = gaussian_orthogonal_random_matrix(16, 8, dtype=torch.float64)
    fn = lambda x: torch.nn.functional.elu(x) + 1  # noqa: E731
    for causal in (False, True):
        out = favor_attention(q, k, v, w, kernel=fn, causal=causal, chunk_size=3, eps=1e-4)
        ref = favor_attention_reference(q, k, v, w, kernel=fn, causal=causal, eps=1e-4)
        assert torch.allclose(out, ref, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_error_falls_as_features_grow(causal):
    # Averaged over draws so that the trend is robust; inputs of moderate norm.
    q, k, v = _qkv(b=2, h=2, length=32, d=16, scale=0.5)
    exact = exact_attention_reference(q, k, v, causal=causal)

    def rel_err(m):
        errs = []
        for _ in range(4):
            w = gaussian_orthogonal_random_matrix(m, 16, dtype=torch.float64)
            out = favor_attention(q, k, v, w, causal=causal, chunk_size=8)
            errs.append((out - exact).norm() / exact.norm())
        return torch.stack(errs).mean().item()

    e16, e256, e1024 = rel_err(16), rel_err(256), rel_err(1024)
    # Monte Carlo error ~ m^-1/2: 16x the features should cut it ~4x, 4x about 2x (seeded
    # inputs and draws; measured 2.6-2.7x and 1.75-1.8x, 0.054-0.082 at m = 1024).
    assert e16 / e256 > 2.0 and e256 / e1024 > 1.4, (e16, e256, e1024)
    assert e1024 < 0.1


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("chunk", [4, 16])
def test_causal_has_no_future_leak(kernel, chunk, causal_impl):
    length, t = 24, 9
    q, k, v = _qkv(b=1, h=2, length=length)
    w = gaussian_orthogonal_random_matrix(16, 8, dtype=torch.float64)
    out = favor_attention(q, k, v, w, kernel=kernel, causal=True, chunk_size=chunk)
    # Large future keys move the global key maximum: a whole-sequence stabiliser would leak
    # it into the past through the eps term.
    k2, v2 = k.clone(), v.clone()
    k2[:, :, t + 1 :] = 5 * torch.randn_like(k2[:, :, t + 1 :])
    v2[:, :, t + 1 :] = torch.randn_like(v2[:, :, t + 1 :])
    out2 = favor_attention(q, k2, v2, w, kernel=kernel, causal=True, chunk_size=chunk)
    assert (out[:, :, : t + 1] - out2[:, :, : t + 1]).abs().max() < 1e-10
    assert (out[:, :, t + 1 :] - out2[:, :, t + 1 :]).abs().max() > 1e-6


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("eps", [None, 0.3])
def test_gradcheck(kernel, causal, eps, causal_impl):
    # eps = 0.3 makes the output depend strongly on the stabilisers, so that their
    # (hand-written) gradients are checked too.
    q, k, v = (t.requires_grad_() for t in _qkv(b=1, h=2, length=7, d=3, dv=2))
    w = gaussian_orthogonal_random_matrix(5, 3, dtype=torch.float64)
    mask = torch.tensor([[True] * 6 + [False]])

    def fn(q, k, v):
        return favor_attention(
            q, k, v, w, kernel=kernel, causal=causal, mask=mask, chunk_size=3, eps=eps
        )

    assert torch.autograd.gradcheck(fn, (q, k, v), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("causal", [False, True])
def test_backward_matches_reference_gradients(kernel, causal, causal_impl):
    q, k, v = _qkv(b=1, h=2, length=13, d=4)
    w = gaussian_orthogonal_random_matrix(8, 4, dtype=torch.float64)
    grads = []
    for f in (favor_attention, favor_attention_reference):
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        kwargs = {"chunk_size": 5} if f is favor_attention else {}
        out = (
            f(qq, kk, vv, w, kernel=kernel, causal=causal, **kwargs)
            if f is favor_attention
            else _ref_with_grad(qq, kk, vv, w, kernel, causal)
        )
        out.pow(2).sum().backward()
        grads.append([t.grad for t in (qq, kk, vv)])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("kernel", KERNELS)
def test_causal_inference_path_equals_training_path(kernel, causal_impl):
    # Without a gradient the causal forward keeps no per-chunk states or scores; same output.
    q, k, v = _qkv(b=2, h=2, length=19, d=4)
    w = gaussian_orthogonal_random_matrix(8, 4, dtype=torch.float64)
    with torch.no_grad():
        plain = favor_attention(q, k, v, w, kernel=kernel, causal=True, chunk_size=4)
    trained = favor_attention(
        q.clone().requires_grad_(), k, v, w, kernel=kernel, causal=True, chunk_size=4
    )
    assert torch.equal(plain, trained.detach())
    assert torch.allclose(
        plain, favor_attention_reference(q, k, v, w, kernel=kernel, causal=True), atol=1e-12
    )


def test_causal_under_no_grad_keeps_nothing_for_backward(monkeypatch, causal_impl):
    # Inside an autograd Function needs_input_grad ignores no_grad: inputs that require grad
    # (e.g. evaluation without a detach) must still reach it detached, so no buffers are kept.
    from protein_performer.attention.favor import (
        causal as favor_causal,
    )
    from protein_performer.attention.favor import (
        chunkwise as favor_chunkwise,
    )

    seen = []
    if causal_impl == "chunkwise":
        owner, name = favor_chunkwise, "causal_favor_chunkwise"
    else:
        owner = favor_causal.CausalFavorCpu if causal_impl == "cpp" else favor_causal._CausalFavor
        name = "apply"
    inner = getattr(owner, name)
    monkeypatch.setattr(
        owner,
        name,
        lambda q, k, v, *rest: (
            seen.append((q.requires_grad, k.requires_grad, v.requires_grad))
            or inner(q, k, v, *rest)
        ),
    )
    q, k, v = (t.requires_grad_() for t in _qkv(b=1, h=2, length=9, d=4))
    w = gaussian_orthogonal_random_matrix(8, 4, dtype=torch.float64)
    with torch.no_grad():
        favor_attention(q, k, v, w, kernel="softmax", causal=True, chunk_size=4)
    favor_attention(q, k, v, w, kernel="softmax", causal=True, chunk_size=4)
    assert seen == [(False, False, False), (True, True, True)]


def _ref_with_grad(q, k, v, w, kernel, causal):
    # The reference detaches its inputs; this differentiable float64 twin builds the same
    # per-query-stabilised matrix without the loop (all keys seen by query i), for small L.
    length, d, m = q.shape[2], q.shape[3], w.shape[0]
    allowed = torch.ones(length, length, dtype=torch.bool)
    if causal:
        allowed = allowed.tril()
    if kernel == "softmax":
        eps = 1e-6

        def logits(x):
            xs = x * d**-0.25
            return xs @ w.T - (xs * xs).sum(-1, keepdim=True) / 2

        lq, lk = logits(q), logits(k)
        phi_q = (torch.exp(lq - lq.amax(-1, keepdim=True)) + eps) / math.sqrt(m)
        kmax = lk.amax(-1)  # [B, H, L]
        stab = kmax[..., None, :].masked_fill(~allowed, float("-inf")).amax(-1)  # M_i [B, H, L]
        phi_k = (torch.exp(lk[:, :, None] - stab[..., None, None]) + eps) / math.sqrt(
            m
        )  # [B,H,i,j,m]
        mat = (phi_q[:, :, :, None] * phi_k).sum(-1)
    else:
        f = lambda x: torch.relu(x @ w.T / math.sqrt(m)) + 1e-3  # noqa: E731
        mat = f(q) @ f(k).transpose(-1, -2)
    mat = mat * allowed
    return (mat / mat.sum(-1, keepdim=True)) @ v


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("causal", [False, True])
def test_attention_matrix_equals_reference_and_one_hot_run(kernel, causal):
    q, k, v = _qkv(length=11)
    w = gaussian_orthogonal_random_matrix(16, 8, dtype=torch.float64)
    mask = _padding_mask(2, 11)
    mat = favor_attention_matrix(q, k, w, kernel=kernel, causal=causal, mask=mask, chunk_size=4)
    ref = favor_attention_matrix_reference(q, k, w, kernel=kernel, causal=causal, mask=mask)
    assert torch.allclose(mat, ref, atol=1e-12)
    assert torch.allclose(mat.sum(-1), torch.ones_like(mat.sum(-1)))
    if causal:
        assert (mat.triu(1) == 0).all()
    out = favor_attention(q, k, v, w, kernel=kernel, causal=causal, mask=mask, chunk_size=4)
    assert torch.allclose(mat @ v, out, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True])
def test_float32_and_bf16_autocast(causal, causal_impl):
    q, k, v = _qkv(b=1, h=2, length=40, d=16, dtype=torch.float32)
    w = gaussian_orthogonal_random_matrix(32, 16)
    ref = favor_attention_reference(q, k, v, w, causal=causal)
    out32 = favor_attention(q, k, v, w, causal=causal, chunk_size=16)
    assert torch.allclose(out32.double(), ref, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out16 = favor_attention(
            q.bfloat16(), k.bfloat16(), v.bfloat16(), w, causal=causal, chunk_size=16
        )
    assert out16.dtype == torch.bfloat16
    # bf16 inputs (8-bit mantissa) with float32 accumulation inside.
    assert (out16.double() - ref).abs().max() < 0.05


def test_large_inputs_stay_finite(causal_impl):
    q, k, v = _qkv(b=1, h=1, length=50, d=8, dtype=torch.float32, scale=20.0)
    w = gaussian_orthogonal_random_matrix(16, 8)
    for causal in (False, True):
        assert torch.isfinite(favor_attention(q, k, v, w, causal=causal, chunk_size=8)).all()


def test_bad_shapes_are_named():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="projection"):
        favor_attention(q, k, v, torch.randn(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="kernel"):
        favor_attention(q, k, v, torch.randn(4, 8, dtype=torch.float64), kernel="tanh")


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("masked", [False, True])
def test_bidirectional_across_row_blocks(monkeypatch, kernel, masked):
    """The bidirectional paths run in blocks of rows (softmax with an online key maximum): with
    the smallest blocks (64 rows), a partial last block and a maximum that grows in later
    blocks (rescaled state), output and gradients still equal the float64 references."""
    import protein_performer.attention.favor.bidirectional as favor

    monkeypatch.setattr(favor, "_BLOCK_ELEMS", 1)
    length = 150
    q, k, v = _qkv(b=2, h=2, length=length, d=4, dv=3)
    k = k * torch.linspace(0.2, 3.0, length, dtype=torch.float64)[:, None]  # maxima grow
    w = gaussian_orthogonal_random_matrix(8, 4, dtype=torch.float64)
    mask = _padding_mask(2, length) if masked else None
    out = favor_attention(q, k, v, w, kernel=kernel, mask=mask)
    ref = favor_attention_reference(q, k, v, w, kernel=kernel, mask=mask)
    assert torch.allclose(out, ref, atol=1e-12, rtol=1e-10)
    if not masked:
        grads = []
        for f in ("fast", "ref"):
            qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
            o = (
                favor_attention(qq, kk, vv, w, kernel=kernel)
                if f == "fast"
                else _ref_with_grad(qq, kk, vv, w, kernel, False)
            )
            o.pow(2).sum().backward()
            grads.append([t.grad for t in (qq, kk, vv)])
        for a, b in zip(*grads):
            assert torch.allclose(a, b, atol=1e-10)
    else:  # the stabiliser gradients matter with a large eps; padded keys included
        qs, ks, vs = (t[:1, :1, :, :2].clone().requires_grad_() for t in (q, k, v))
        w2 = w[:3, :2].contiguous()
        m1 = mask[-1:]

        def fn(q, k, v):
            return favor_attention(q, k, v, w2, kernel=kernel, mask=m1, eps=0.3)

        assert torch.autograd.gradcheck(fn, (qs, ks, vs), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("kernel", KERNELS)
def test_causal_left_padding_and_gradients(kernel, causal_impl):
    """Queries before the first real key (left padding) output 0 with zero gradient; the rest
    match the reference, and gradients (stabilisers included, eps = 0.3) pass gradcheck."""
    q, k, v = (t.requires_grad_() for t in _qkv(b=2, h=1, length=9, d=3, dv=2))
    w = gaussian_orthogonal_random_matrix(5, 3, dtype=torch.float64)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, :4] = False

    def fn(q, k, v):
        return favor_attention(
            q, k, v, w, kernel=kernel, causal=True, mask=mask, chunk_size=2, eps=0.3
        )

    out = fn(q, k, v)
    ref = favor_attention_reference(
        q.detach(), k.detach(), v.detach(), w, kernel=kernel, causal=True, mask=mask, eps=0.3
    )
    assert (out[0, :, :4] == 0).all()
    assert torch.allclose(out[:, :, 4:], ref[:, :, 4:], atol=1e-12)
    assert torch.autograd.gradcheck(fn, (q, k, v), eps=1e-6, atol=1e-6)


def test_generalized_kernel_gradients():
    q, k, v = (t.requires_grad_() for t in _qkv(b=1, h=2, length=7, d=3, dv=2))
    w = gaussian_orthogonal_random_matrix(5, 3, dtype=torch.float64)
    fn_kernel = lambda x: torch.nn.functional.elu(x) + 1  # noqa: E731
    for causal in (False, True):

        def fn(q, k, v, causal=causal):
            return favor_attention(
                q,
                k,
                v,
                w,
                kernel=fn_kernel,
                causal=causal,
                chunk_size=3,
                mask=torch.tensor([[True] * 6 + [False]]),
            )

        assert torch.autograd.gradcheck(fn, (q, k, v), eps=1e-6, atol=1e-6)


def test_causal_gradients_where_the_rescale_factor_is_capped(causal_impl):
    """Key logits that jump by more than the cap (600 in float64) inside one chunk: the
    capped rows use a clamped factor (their gradient must not reach the maximum), checked
    where the capped part still matters next to eps (jump 605: exp(-5) against 1e-6)."""
    torch.manual_seed(1)
    d, length = 4, 8
    w = gaussian_orthogonal_random_matrix(6, d, generator=torch.Generator().manual_seed(0)).double()
    q = torch.randn(1, 1, length, d, dtype=torch.float64)
    k = torch.randn(1, 1, length, d, dtype=torch.float64)
    v = torch.randn(1, 1, length, 3, dtype=torch.float64)

    def max_logits(k):
        kp = k[0, 0] * d**-0.25
        return (kp @ w.t() - 0.5 * kp.pow(2).sum(-1, keepdim=True)).amax(-1)

    target = max_logits(k)[2:4].max() - 605.0
    lo, hi = 1.0, 1e3  # scale keys 0, 1 until their max logit is 605 under the chunk's maximum
    for _ in range(200):
        mid = (lo + hi) / 2
        k2 = k.clone()
        k2[..., :2, :] *= mid
        lo, hi = (mid, hi) if max_logits(k2)[:2].max() > target else (lo, mid)
    k[..., :2, :] *= lo
    logits = max_logits(k)
    assert 600 < logits[2:4].max() - logits[:2].max() < 610
    inputs = tuple(t.requires_grad_(True) for t in (q, k, v))

    def fn(q, k, v):
        return favor_attention(q, k, v, w, kernel="softmax", causal=True, chunk_size=4)

    assert torch.isfinite(fn(*inputs)).all()
    assert torch.autograd.gradcheck(fn, inputs, atol=1e-8, rtol=1e-5)


@pytest.mark.parametrize("kernel", KERNELS)
def test_causal_gradients_at_the_default_chunk_size(kernel, causal_impl):
    # Full chunks of the implementation's default size and a partial last chunk, against the
    # float64 twin's autograd; the layer's config default (None) is the implementation's.
    from protein_performer.attention import AttentionConfig
    from protein_performer.attention.favor.causal import DEFAULT_CHUNK
    from protein_performer.attention.favor.layer import DEFAULT_CHUNK_SIZE

    assert AttentionConfig().chunk_size is None and AttentionConfig().causal_impl == "auto"
    assert DEFAULT_CHUNK_SIZE == DEFAULT_CHUNK["cpp"] == DEFAULT_CHUNK["loop"]
    length = 3 * DEFAULT_CHUNK[causal_impl] - 5
    q, k, v = _qkv(b=1, h=2, length=length, d=4)
    w = gaussian_orthogonal_random_matrix(8, 4, dtype=torch.float64)
    grads = []
    for fast in (True, False):
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        out = (
            favor_attention(qq, kk, vv, w, kernel=kernel, causal=True)
            if fast
            else _ref_with_grad(qq, kk, vv, w, kernel, True)
        )
        out.pow(2).sum().backward()
        grads.append([t.grad for t in (qq, kk, vv)])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-10)
