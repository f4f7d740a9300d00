"""The C++ causal FAVOR+ kernel for CPU tensors (``csrc/favor_causal.cpp``), built on first use.

Same function, same saved tensors and the same arithmetic as the Python loop of
:mod:`favor.causal`, but one head per task (``at::parallel_for`` over B*H) on cache-resident
[C, m] tiles: GEMMs through BLAS and the stabiliser, exp2, ratio and masks fused into a few
vectorised passes per tile, with no per-op dispatch. 1.2-1.3x the Python loop's speed at
L >= 4096 (docs/benchmarks.md). The build takes ~10 s once (gcc, through
``torch.utils.cpp_extension``; cached in ``$TORCH_EXTENSIONS_DIR``, default
``~/.cache/torch_extensions``). If it cannot be built, a warning says why and the Python loop
runs instead; ``PROTEIN_PERFORMER_NO_EXT=1`` skips it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor

from protein_performer.attention.favor.common import (
    add_key_max_grads,
    feature_projection,
    key_norms,
    rescale_cap,
    scaled_projection,
)
from protein_performer.attention.numerics import LOG2E, STAB_FLOOR

log = logging.getLogger(__name__)

DISABLE_ENV = "PROTEIN_PERFORMER_NO_EXT"
SOURCE = Path(__file__).parent / "csrc" / "favor_causal.cpp"
# -fopenmp: at::parallel_for is OpenMP in torch's CPU builds (the extension shares torch's
# libgomp); the OpenMP simd pragmas vectorise the reductions without -ffast-math (which would
# break the -inf of padded keys).
CFLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
# torch's build lock is a bare file: a process killed while building leaves it behind and every
# later process waits on it forever. A build takes seconds to a minute; a lock this old is stale.
STALE_LOCK_SECONDS = 600.0


@functools.cache
def _ops():
    """torch.ops namespace of the built kernel, or None (disabled, or the build failed: warned)."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return None
    name = f"protein_performer_favor_{_cpu_tag()}"
    try:
        from torch.utils import cpp_extension

        _put_ninja_on_path()
        build_dir = Path(cpp_extension._get_build_directory(name, verbose=False))
        clear_stale_lock(build_dir)
        built = build_dir / f"{name}.so"
        if not built.exists():
            log.info("building the C++ causal FAVOR+ kernel (first use on this machine, ~10 s)")
        cpp_extension.load(
            name=name,
            sources=[str(SOURCE)],
            extra_cflags=CFLAGS,
            extra_ldflags=["-fopenmp"],
            is_python_module=False,
            verbose=False,
        )
        return torch.ops.protein_performer_favor
    except Exception as exc:  # no compiler, no ninja, a read-only cache...
        warnings.warn(
            f"the C++ causal FAVOR+ kernel could not be built ({_reason(exc)}); using "
            f"the Python loop (1.2-1.3x slower). Set {DISABLE_ENV}=1 to skip the build.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def clear_stale_lock(build_dir: Path, max_age_s: float = STALE_LOCK_SECONDS) -> bool:
    """Remove ``build_dir/lock`` when older than ``max_age_s`` (left by a build that was
    killed: torch would wait on it forever); True when one was removed."""
    lock = build_dir / "lock"
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < max_age_s:
        return False
    log.warning("removing a stale build lock %s (%.0f s old: a killed build left it)", lock, age)
    lock.unlink(missing_ok=True)
    return True


def _reason(exc: Exception) -> str:
    """The exception's first line, plus the compiler's first error line when it has one (a
    failed build's message holds the whole compiler output)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [repr(exc)]
    first = f"{type(exc).__name__}: {lines[0][:200]}"
    error = next((line for line in lines[1:] if "error" in line.lower()), None)
    return f"{first} ... {error[:300]}" if error else first


def _cpu_tag(cpuinfo: str = "/proc/cpuinfo") -> str:
    """A short hash of the CPU's instruction-set flags: -march=native builds are kept apart per
    kind of CPU (a cache shared by a cluster's nodes must not hand one CPU another's build)."""
    try:
        with open(cpuinfo) as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return hashlib.sha1((platform.machine() + flags).encode()).hexdigest()[:10]


def _put_ninja_on_path() -> None:
    """cpp_extension runs `ninja` from PATH; the pip package's binary is not there unless the
    virtual environment is activated."""
    if shutil.which("ninja") is None:
        try:
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        except ImportError:
            pass


def usable(q: Tensor) -> bool:
    """True when the C++ kernel takes these inputs: CPU float32/float64, and it is built."""
    return (
        q.device.type == "cpu" and q.dtype in (torch.float32, torch.float64) and _ops() is not None
    )


def _mask_arg(mask: Tensor | None) -> Tensor:
    return torch.empty(0, dtype=torch.bool) if mask is None else mask.contiguous()


class CausalFavorCpu(torch.autograd.Function):
    """Arguments and result as :class:`favor.causal._CausalFavor`."""

    @staticmethod
    def forward(ctx, q, k, v, w, mask, eps: float, chunk: int, softmax: bool):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        wt = feature_projection(w, q.shape[-1], softmax)
        knorm = key_norms(k, mask) if softmax else q.new_empty(0)
        keep = any(ctx.needs_input_grad[:3])
        out, *saved = _ops().causal_forward(
            q,
            k,
            v,
            wt,
            _mask_arg(mask),
            knorm,
            eps,
            chunk,
            softmax,
            keep,
            rescale_cap(q.dtype),
            STAB_FLOOR * LOG2E,
        )
        ctx.eps, ctx.chunk, ctx.softmax = eps, chunk, softmax
        ctx.save_for_backward(q, k, v, w, mask, knorm, out, *saved)
        return out

    @staticmethod
    def backward(ctx, g_out):
        q, k, v, w, mask, knorm, out, *saved = ctx.saved_tensors
        d = q.shape[-1]
        wt, ws = (
            feature_projection(w, d, ctx.softmax),
            scaled_projection(w, d, ctx.softmax).contiguous(),
        )
        g_q, g_k, g_v, g_keymax = _ops().causal_backward(
            q,
            k,
            v,
            wt,
            ws,
            _mask_arg(mask),
            knorm,
            out,
            *saved,
            g_out.contiguous(),
            ctx.eps,
            ctx.chunk,
            ctx.softmax,
            rescale_cap(q.dtype),
        )
        if ctx.softmax:  # the keys holding a running maximum
            add_key_max_grads(g_k, k, ws, g_keymax)
        return g_q, g_k, g_v, None, None, None, None, None
