"""One case of the attention benchmark, measured in this process: time (best of a few runs
after a warm-up) and peak memory (``python -m protein_performer.benchmarks.attention_case
SPEC`` runs it in a fresh process, so the peak is the case's own).

On CPU the peak is the rise of the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs`` where Linux allows; tracemalloc does not see torch's allocations)
over the baseline after the inputs are allocated; on CUDA ``torch.cuda.max_memory_allocated``
above the inputs. A 2048 x 2048 float32 matmul is timed beside each run (the machine's rate).
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path

import torch

from protein_performer.attention import AttentionConfig, build_attention
from protein_performer.attention.favor.causal import resolve_impl

PEER = "performer_pytorch"  # the widely used port, benchmarked when importable


def _dtype(name: str):
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _build(spec: dict):
    """Return fn(q, k, v) -> out [B, H, L, Dh] for the case's kind."""
    device, dtype = torch.device(spec["device"]), _dtype(spec["dtype"])
    if spec["kind"] == PEER:
        from performer_pytorch import FastAttention

        layer = FastAttention(
            dim_heads=spec["head_dim"], nb_features=spec["features"], causal=spec["causal"]
        ).to(device)
        return lambda q, k, v: layer(q, k, v)
    cfg = AttentionConfig(
        kind=spec["kind"],
        causal=spec["causal"],
        nb_features=spec["features"],
        chunk_size=spec["chunk_size"],
        redraw_interval=0,
        causal_impl=spec.get("causal_impl", "auto"),
        max_length=max(spec["length"], 1024),
    )
    layer = build_attention(cfg, d_model=spec["heads"] * spec["head_dim"], n_heads=spec["heads"])
    layer = layer.to(device=device, dtype=dtype).eval()
    return lambda q, k, v: layer.attend(q, k, v, None)


def run_case(spec: dict) -> dict:
    """Measure one case in this process (called in a fresh subprocess)."""
    device, dtype = torch.device(spec["device"]), _dtype(spec["dtype"])
    backward = spec["pass"] == "fwd+bwd"
    # "highest" (the default): float32 GEMMs in float32; "high" lets CUDA use TF32
    torch.set_float32_matmul_precision(spec.get("matmul_precision", "highest"))
    fn = _build(spec)
    shape = (spec["batch"], spec["heads"], spec["length"], spec["head_dim"])
    q, k, v = (
        torch.randn(shape, device=device, dtype=dtype, requires_grad=backward) for _ in range(3)
    )
    grad = torch.randn(shape, device=device, dtype=dtype)
    cuda = device.type == "cuda"

    def once() -> None:
        for t in (q, k, v):
            t.grad = None
        if backward:
            fn(q, k, v).backward(grad)
        else:
            with torch.no_grad():
                fn(q, k, v)
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_reset_peak()
    t0 = time.perf_counter()
    once()
    first = time.perf_counter() - t0
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _rss_peak() - base
    # A 2048 x 2048 matmul timed before each run: the machine's rate beside the case (a shared
    # machine has slow and fast spells; the rate taken once at the start of a run misses them).
    n = spec.get("matmul_size", 2048)
    mat = [torch.randn(n, n, device=device) for _ in range(2)]
    rate = _matmul_rate(*mat, cuda)  # warm-up
    times, rates = [], []
    deadline = time.perf_counter() + spec["budget_s"]
    while len(times) < spec["repeats"] and (not times or time.perf_counter() < deadline):
        rates.append(_matmul_rate(*mat, cuda))
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    times, rates = times or [first], rates or [rate]
    res = {
        "time_s": min(times),
        "median_s": sorted(times)[len(times) // 2],
        "runs": len(times),
        "peak_bytes": max(peak, 0),
        "matmul_gflops": max(rates),
    }
    if spec["causal"] and spec["kind"].startswith("favor"):
        # what ran (FAVOR+ computes in float32 whatever the input dtype)
        res["impl"] = resolve_impl(
            spec.get("causal_impl", "auto"), torch.empty(0, device=device, dtype=torch.float32)
        )
    return res


def _matmul_rate(a, b, cuda: bool, repeats: int = 3) -> float:
    """GFLOP/s of a @ b (square float32 matrices), best of a few."""
    best = math.inf
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * a.shape[0] ** 3 / best / 1e9


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _rss_reset_peak() -> int:
    """Current resident bytes; resets the kernel's peak-RSS mark (VmHWM) where Linux allows,
    so that the peak seen next is the case's own, not the import's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        rss = _status_kib("VmRSS")
        if rss is not None:
            return rss * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss_peak() -> int:
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def matmul_peak_gflops(device: str, n: int = 2048, repeats: int = 10) -> float:
    a, b = (torch.randn(n, n, device=device) for _ in range(2))
    return _matmul_rate(a, b, device == "cuda", repeats + 1)


if __name__ == "__main__":  # one case in a fresh process (attention._subprocess_case)
    print(json.dumps(run_case(json.loads(sys.argv[1]))))
