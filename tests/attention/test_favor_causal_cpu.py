"""The C++ causal FAVOR+ kernel equals the Python loop (outputs and gradients), and its build
falls back cleanly. (Both are checked against the float64 references in test_favor.py.)"""

import warnings

import pytest
import torch

from protein_performer.attention import gaussian_orthogonal_random_matrix
from protein_performer.attention.favor import causal as favor_causal
from protein_performer.attention.favor import causal_cpu as favor_causal_cpu

# The C++ kernel must build wherever a compiler is installed (conftest's cpp_kernel fixture).
needs_ext = pytest.mark.usefixtures("cpp_kernel")


def _inputs(dtype, bh=6, length=37, d=5, dv=4, m=9, spread=3.0, masked=True):
    q, k = torch.randn(bh, length, d, dtype=dtype), torch.randn(bh, length, d, dtype=dtype)
    k = k * torch.linspace(0.2, spread, length, dtype=dtype)[:, None]  # key maxima grow
    v = torch.randn(bh, length, dv, dtype=dtype)
    w = gaussian_orthogonal_random_matrix(m, d, dtype=dtype)
    mask = None
    if masked:
        mask = torch.ones(bh, length, dtype=torch.bool)
        mask[0, :5] = False  # left padding: rows with no real key
        mask[1, -6:] = False  # right padding
        mask[2] = False  # all padded
    return q, k, v, w, mask


def _run(fn, q, k, v, w, mask, eps, chunk, softmax, g):
    qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
    out = fn.apply(qq, kk, vv, w, mask, eps, chunk, softmax)
    out.backward(g)
    return [out.detach(), qq.grad, kk.grad, vv.grad]


@needs_ext
@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("length,chunk", [(37, 4), (64, 8), (50, 7), (9, 2), (20, 64), (33, 1)])
@pytest.mark.parametrize("eps", [1e-6, 0.3])
def test_cpp_kernel_equals_python_loop(softmax, dtype, length, chunk, eps):
    q, k, v, w, mask = _inputs(dtype, length=length)
    g = torch.randn(v.shape, dtype=dtype)
    ref = _run(favor_causal._CausalFavor, q, k, v, w, mask, eps, chunk, softmax, g)
    got = _run(favor_causal_cpu.CausalFavorCpu, q, k, v, w, mask, eps, chunk, softmax, g)
    tol = 1e-12 if dtype == torch.float64 else 3e-5
    for a, b in zip(got, ref):
        assert torch.isfinite(a).all()
        assert (a - b).abs().max() <= tol * max(b.abs().max().item(), 1e-3)
    assert (got[0][2] == 0).all() and (got[3][2] == 0).all()  # the all-padded sequence


@needs_ext
def test_cpp_kernel_with_a_capped_rescale_factor_in_float32():
    # Key logits that jump by far more than the float32 cap (60 nats) inside one chunk.
    q, k, v, w, _ = _inputs(torch.float32, bh=2, length=24, masked=False)
    k[:, 8:] *= 40.0
    g = torch.randn(v.shape)
    ref = _run(favor_causal._CausalFavor, q, k, v, w, None, 1e-6, 16, True, g)
    got = _run(favor_causal_cpu.CausalFavorCpu, q, k, v, w, None, 1e-6, 16, True, g)
    for a, b in zip(got, ref):
        assert torch.isfinite(a).all()
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


@needs_ext
def test_cpu_tensors_go_to_the_cpp_kernel(monkeypatch):
    seen = []
    for fn in (favor_causal_cpu.CausalFavorCpu, favor_causal._CausalFavor):
        apply = fn.apply
        monkeypatch.setattr(
            fn, "apply", lambda *a, _f=fn, _apply=apply: seen.append(_f) or _apply(*a)
        )
    q, k, v, w, mask = _inputs(torch.float32)
    favor_causal.causal_favor(q, k, v, w, mask, 1e-6, 8, True)
    monkeypatch.setattr(favor_causal_cpu, "usable", lambda q: False)
    favor_causal.causal_favor(q, k, v, w, mask, 1e-6, 8, True)
    assert seen == [favor_causal_cpu.CausalFavorCpu, favor_causal._CausalFavor]


@pytest.fixture
def fresh_build_state():
    favor_causal_cpu._ops.cache_clear()
    yield
    favor_causal_cpu._ops.cache_clear()


def test_a_failed_build_warns_and_falls_back(monkeypatch, fresh_build_state):
    import torch.utils.cpp_extension as ext

    def broken(**kwargs):  # what cpp_extension raises: the prefix, then the compiler's output
        raise RuntimeError(
            "Error building extension 'protein_performer_favor': [1/2] c++ -c x.cpp\n"
            "x.cpp:6:10: fatal error: ATen/ATen.h: No such file or directory\n"
            "compilation terminated.\nninja: build stopped: subcommand failed."
        )

    monkeypatch.delenv(favor_causal_cpu.DISABLE_ENV, raising=False)
    monkeypatch.setattr(ext, "load", broken)
    with pytest.warns(
        RuntimeWarning,
        match="could not be built \\(RuntimeError: Error building "
        "extension.*fatal error: ATen/ATen.h: No such file.*Python loop",
    ):
        assert favor_causal_cpu._ops() is None
    q, k, v, w, mask = _inputs(torch.float64)
    assert not favor_causal_cpu.usable(q)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, not on every call
        out = favor_causal.causal_favor(q, k, v, w, mask, 1e-6, 8, True)
    assert out.shape == v.shape and torch.isfinite(out).all()


def test_a_first_build_says_so(monkeypatch, fresh_build_state, tmp_path, caplog):
    import torch.utils.cpp_extension as ext

    monkeypatch.delenv(favor_causal_cpu.DISABLE_ENV, raising=False)
    monkeypatch.setattr(ext, "_get_build_directory", lambda name, verbose: str(tmp_path))
    monkeypatch.setattr(ext, "load", lambda **kw: None)  # (the ops stay registered from before)
    with caplog.at_level("INFO", logger=favor_causal_cpu.__name__):
        favor_causal_cpu._ops()
    assert "building the C++ causal FAVOR+ kernel" in caplog.text
    caplog.clear()
    favor_causal_cpu._ops.cache_clear()
    (tmp_path / f"protein_performer_favor_{favor_causal_cpu._cpu_tag()}.so").touch()  # built
    with caplog.at_level("INFO", logger=favor_causal_cpu.__name__):
        favor_causal_cpu._ops()
    assert "building" not in caplog.text


def test_the_environment_variable_skips_the_build(monkeypatch, fresh_build_state):
    import torch.utils.cpp_extension as ext

    monkeypatch.setenv(favor_causal_cpu.DISABLE_ENV, "1")
    monkeypatch.setattr(ext, "load", lambda **kw: pytest.fail("built although disabled"))
    assert favor_causal_cpu._ops() is None
    assert not favor_causal_cpu.usable(torch.zeros(1, 2, 3))


def test_the_pip_ninja_is_put_on_path_when_none_is_found(monkeypatch):
    ninja = pytest.importorskip("ninja")
    monkeypatch.setattr(favor_causal_cpu.shutil, "which", lambda name: None)
    monkeypatch.setenv("PATH", "/nowhere")
    favor_causal_cpu._put_ninja_on_path()
    assert favor_causal_cpu.os.environ["PATH"].split(":")[0] == ninja.BIN_DIR


def test_builds_are_kept_apart_per_kind_of_cpu(tmp_path):
    # -march=native builds: a cache shared by different CPUs must not hand one another's build.
    tags = []
    for name, flags in (
        ("a", "fpu sse2 avx2"),
        ("b", "fpu sse2 avx2 avx512f"),
        ("c", "fpu sse2 avx2"),
    ):
        (tmp_path / name).write_text(f"processor\t: 0\nflags\t\t: {flags}\nbogomips\t: 1\n")
        tags.append(favor_causal_cpu._cpu_tag(str(tmp_path / name)))
    assert tags[0] == tags[2] != tags[1]
    assert favor_causal_cpu._cpu_tag(str(tmp_path / "missing")) == favor_causal_cpu._cpu_tag(
        "/nonexistent"
    )


def test_a_stale_build_lock_is_removed_and_a_fresh_one_kept(tmp_path):
    """A build killed mid-way leaves torch's lock file; every later process would wait on it
    forever. One older than the limit goes, a fresh one (a build in progress) stays."""
    import os
    import time

    from protein_performer.attention.favor.causal_cpu import clear_stale_lock

    lock = tmp_path / "lock"
    assert not clear_stale_lock(tmp_path)  # no lock: nothing to do
    lock.touch()
    assert not clear_stale_lock(tmp_path, max_age_s=600) and lock.exists()
    old = time.time() - 601
    os.utime(lock, (old, old))
    assert clear_stale_lock(tmp_path, max_age_s=600) and not lock.exists()
