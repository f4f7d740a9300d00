"""The chunk-parallel causal FAVOR+ (the GPU path) equals the chunk loop and the float64
reference, is what the dispatch runs where asked, keeps O(L) memory and float32 internals."""

import pytest
import torch

from protein_performer.attention import (
    AttentionConfig,
    build_attention,
    favor_attention,
    gaussian_orthogonal_random_matrix,
)
from protein_performer.attention.favor import causal as favor_causal
from protein_performer.attention.favor import causal_cpu as favor_causal_cpu
from protein_performer.attention.favor import chunkwise as favor_chunkwise
from protein_performer.attention.favor.chunkwise import causal_favor_chunkwise
from protein_performer.attention.favor.naive import favor_attention_reference


@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("length,chunk", [(37, 4), (64, 8), (50, 7), (20, 64), (33, 1), (300, 256)])
@pytest.mark.parametrize("eps", [1e-6, 0.3])
def test_chunkwise_equals_loop_forward_and_gradients(softmax, length, chunk, eps):
    torch.manual_seed(0)
    bh, d, dv, m = 4, 5, 4, 9
    q, k = (
        torch.randn(bh, length, d, dtype=torch.float64),
        torch.randn(bh, length, d, dtype=torch.float64),
    )
    k = k * torch.linspace(0.2, 3.0, length, dtype=torch.float64)[:, None]  # maxima jump
    v = torch.randn(bh, length, dv, dtype=torch.float64)
    w = gaussian_orthogonal_random_matrix(m, d, dtype=torch.float64)
    mask = torch.ones(bh, length, dtype=torch.bool)
    mask[0, :5] = False
    mask[1, -6:] = False
    mask[2] = False
    g = torch.randn(bh, length, dv, dtype=torch.float64)
    res = []
    for fn in (lambda *a: favor_causal._CausalFavor.apply(*a), causal_favor_chunkwise):
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        out = fn(qq, kk, vv, w, mask, eps, chunk, softmax)
        out.backward(g)
        res.append([out.detach(), qq.grad, kk.grad, vv.grad])
    for a, b in zip(*res):
        assert torch.isfinite(a).all()
        assert (a - b).abs().max() <= 1e-10 * max(b.abs().max().item(), 1.0)


def _run(fn, q, k, v, w, mask, eps, chunk, softmax, g):
    qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
    out = fn(qq, kk, vv, w, mask, eps, chunk, softmax)
    out.backward(g)
    return [out.detach(), qq.grad, kk.grad, vv.grad]


@pytest.mark.parametrize("softmax", [True, False])
def test_float32_large_key_spreads_and_capped_rescales_agree_with_the_loop(softmax):
    # Huge early keys have logits of -209 and below (-|k'|^2/2), the later ones up to ~5: the
    # running maximum jumps by ~214 > 60 (the float32 cap) at row 70, inside chunk 1, so rows
    # 64-69 use the capped factor and the weight of chunk 0 in chunk 1's state underflows to 0.
    torch.manual_seed(0)
    bh, length, d, dv, m = 2, 300, 16, 8, 32
    q, k, v = torch.randn(bh, length, d), torch.randn(bh, length, d), torch.randn(bh, length, dv)
    k[:, :70] *= 18.0
    k[:, 200:] *= torch.linspace(0.2, 4.0, 100)[:, None]
    w = gaussian_orthogonal_random_matrix(m, d)
    mask = torch.ones(bh, length, dtype=torch.bool)
    mask[1, :3] = False
    g = torch.randn(bh, length, dv)
    ref = _run(favor_causal._CausalFavor.apply, q, k, v, w, mask, 1e-6, 64, softmax, g)
    got = _run(causal_favor_chunkwise, q, k, v, w, mask, 1e-6, 64, softmax, g)
    for a, b in zip(got, ref):
        assert torch.isfinite(a).all()
        assert (a - b).abs().max() <= 2e-4 * b.abs().max()


def test_dispatch_picks_one_implementation_per_device_and_logs_it_once(monkeypatch, caplog):
    monkeypatch.setattr(favor_causal, "_logged", set())
    cpu = torch.zeros(1)
    expected_cpu = "cpp" if favor_causal_cpu.usable(cpu) else "loop"
    with caplog.at_level("INFO", logger=favor_causal.__name__):
        assert favor_causal.resolve_impl("auto", cpu) == expected_cpu
        assert favor_causal.resolve_impl("auto", cpu) == expected_cpu
        # any accelerator (meta stands in for cuda, which this machine lacks): chunkwise
        assert favor_causal.resolve_impl("auto", torch.zeros(1, device="meta")) == "chunkwise"
        for impl in ("loop", "chunkwise"):
            assert favor_causal.resolve_impl(impl, torch.zeros(1, device="meta")) == impl
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        f"causal FAVOR+ on cpu tensors: the {expected_cpu} implementation",
        "causal FAVOR+ on meta tensors: the chunkwise implementation",
        "causal FAVOR+ on meta tensors: the loop implementation",
    ]
    with pytest.raises(ValueError, match=r"causal_impl must be one of .*got 'triton'"):
        favor_causal.resolve_impl("triton", cpu)
    with pytest.raises(ValueError, match="causal_impl=cpp runs CPU float32/float64 tensors"):
        favor_causal.resolve_impl("cpp", torch.zeros(1, device="meta"))
    with pytest.raises(ValueError, match="causal_impl=cpp.*bfloat16"):
        favor_causal.resolve_impl("cpp", torch.zeros(1, dtype=torch.bfloat16))


@pytest.mark.parametrize("impl", ["loop", "chunkwise", "cpp"])
def test_each_implementation_can_be_forced_and_takes_its_default_chunk(impl, monkeypatch):
    if impl == "cpp" and not favor_causal_cpu.usable(torch.zeros(1)):
        pytest.skip("the C++ kernel is not built here")
    seen = []
    inner = favor_causal.resolve_impl
    monkeypatch.setattr(
        favor_causal, "resolve_impl", lambda i, q: seen.append(inner(i, q)) or seen[-1]
    )
    chunks = []
    run = favor_chunkwise.causal_favor_chunkwise
    monkeypatch.setattr(
        favor_chunkwise, "causal_favor_chunkwise", lambda *a: chunks.append(a[6]) or run(*a)
    )
    b, h, length, d = 1, 2, 300, 8
    q, k, v = (torch.randn(b, h, length, d, dtype=torch.float64) for _ in range(3))
    w = gaussian_orthogonal_random_matrix(16, d, dtype=torch.float64)
    out = favor_attention(q, k, v, w, causal=True, causal_impl=impl)
    ref = favor_attention_reference(q, k, v, w, causal=True)
    assert seen == [impl] and torch.allclose(out, ref, atol=1e-12)
    assert chunks == ([favor_causal.DEFAULT_CHUNK["chunkwise"]] if impl == "chunkwise" else [])
    with pytest.raises(ValueError, match="causal_impl must be one of"):
        favor_attention(q, k, v, w, causal=True, causal_impl="gpu")


def test_config_validates_the_implementation_and_chunk():
    assert AttentionConfig(causal_impl="chunkwise", chunk_size=256).causal_impl == "chunkwise"
    with pytest.raises(ValueError, match=r"attention.causal_impl must be one of .*got 'fast'"):
        AttentionConfig(causal_impl="fast")
    with pytest.raises(ValueError, match="attention.chunk_size must be > 0, got 0"):
        AttentionConfig(chunk_size=0)


def _saved_bytes(length: int, chunk: int, softmax: bool, grad: bool = True) -> int:
    """Bytes autograd keeps for backward (distinct storages) after one chunkwise forward."""
    bh, d, m = 2, 16, 64
    q, k, v = (torch.randn(bh, length, d, requires_grad=grad) for _ in range(3))
    w = gaussian_orthogonal_random_matrix(m, d)
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        causal_favor_chunkwise(q, k, v, w, None, 1e-6, chunk, softmax)
    return sum(seen.values())


@pytest.mark.parametrize("softmax", [True, False])
def test_memory_kept_for_backward_is_linear_in_length(softmax):
    bh, d, m, chunk = 2, 16, 64, 32
    small, large = _saved_bytes(1024, chunk, softmax), _saved_bytes(4096, chunk, softmax)
    # N = L / C grows 4x, N^2 16x: still a small share at these sizes
    assert 3.9 < large / small < 4.2, large / small
    # one [L, m] feature tensor for queries and one for keys (no copies), the [L, C] scores,
    # states and prefix states (2 L m (Dv+1) / C), the inputs and ~6 per-row [L, Dv+1] or [L]
    length, dv1 = 4096, d + 1
    bound = 4 * bh * length * (2 * m + chunk + 2 * m * dv1 // chunk + 3 * d + 6 * dv1)
    assert large <= bound, (large, bound)
    assert _saved_bytes(4096, chunk, softmax, grad=False) == 0


def test_bf16_autocast_keeps_features_state_and_normaliser_in_float32(monkeypatch):
    # Every tensor the chunkwise form makes and keeps (features, states, scores, normaliser)
    # is float32 under bf16 autocast, and a layer with large activations stays finite.
    dtypes = set()
    run = favor_chunkwise.causal_favor_chunkwise

    def recording(*args):
        with torch.autograd.graph.saved_tensors_hooks(
            lambda t: dtypes.add(t.dtype) or t, lambda t: t
        ):
            out = run(*args)
        dtypes.add(out.dtype)
        return out

    monkeypatch.setattr(favor_chunkwise, "causal_favor_chunkwise", recording)
    for kind in ("favor_softmax", "favor_relu"):
        cfg = AttentionConfig(
            kind=kind, causal=True, nb_features=32, causal_impl="chunkwise", redraw_interval=0
        )
        layer = build_attention(cfg, d_model=64, n_heads=4)
        x = (30.0 * torch.randn(2, 200, 64)).requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x)
        assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
        out.float().pow(2).mean().backward()
        assert torch.isfinite(x.grad).all()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in layer.parameters())
    assert dtypes - {torch.int64, torch.bool} == {torch.float32}
