"""Time and peak memory of every attention kind vs L (run by ``protein-performer-bench attention``).

Each case (kind, bidirectional/causal, fwd or fwd+bwd, L) runs in a fresh subprocess so that
its peak memory can be read cleanly: on CPU the increase of the process's peak resident set
(``ru_maxrss``) over the baseline after the inputs are allocated (tracemalloc does not see
torch's allocations); on CUDA ``torch.cuda.max_memory_allocated`` above the inputs. Time is
the best of a few runs after one warm-up run (the warm-up is the memory-measured one).

GFLOP/s counts 8 L m d FLOPs per head for a FAVOR+ forward pass (4 L m d for the two
feature maps, 2 L m d for phi(K)^T V, 2 L m d for phi(Q) (.)) and 3x that for forward +
backward; exact attention counts 4 L^2 d per head (2 L^2 d causal), also 3x for fwd+bwd.
They are printed next to a 2048 x 2048 float32 matmul rate measured at the start of the run,
and next to the rate measured beside the case (before each of its timed runs, in its process).
Writes ``attention.csv`` and ``attention.png`` (log-log time and peak memory vs L) to ``out``.

``impls`` times causal FAVOR+ by each implementation (auto | loop | chunkwise | cpp, see
:mod:`protein_performer.attention.favor.causal`): a forced one is the series
``favor_softmax:chunkwise``; ``auto`` keeps the plain kind name (the one the targets judge),
and the ``impl`` column says what it ran.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from protein_performer.attention import ATTENTION_REGISTRY, AttentionConfig, build_attention
from protein_performer.attention.favor.causal import resolve_impl

PEER = "performer_pytorch"  # the widely used port, benchmarked when importable
DEFAULT_LENGTHS = [256, 512, 1024, 2048, 4096, 8192, 16384, 32768]


@dataclass
class AttentionBench:
    """What :func:`bench_attention` times (the CLI's flags, with their defaults)."""

    kinds: list[str] | None = None  # None: every registered kind
    lengths: list[int] = field(default_factory=lambda: list(DEFAULT_LENGTHS))
    causal: list[bool] = field(default_factory=lambda: [False, True])
    passes: list[str] = field(default_factory=lambda: ["fwd", "fwd+bwd"])
    batch: int = 1
    heads: int = 8
    head_dim: int = 64
    features: int = 256
    chunk_size: int | None = None  # None: the implementation's (favor.causal.DEFAULT_CHUNK)
    impls: list[str] = field(default_factory=lambda: ["auto"])
    matmul_precision: str = "highest"
    device: str = "cpu"
    dtype: str = "float32"
    repeats: int = 3
    max_case_seconds: float = 30.0
    timeout: float = 900.0
    peer: bool = True
    malloc_cache: bool = False
    matmul_size: int = 2048
    in_process: bool = False
    out: str = "bench_results"


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _peer_available() -> bool:
    try:
        import performer_pytorch  # noqa: F401
    except Exception:
        return False
    return True


def _build(spec: dict):
    """Return fn(q, k, v) -> out [B, H, L, Dh] for the case's kind."""
    import torch

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
    import torch

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
    import torch

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
    import torch

    a, b = (torch.randn(n, n, device=device) for _ in range(2))
    return _matmul_rate(a, b, device == "cuda", repeats + 1)


def flops(kind: str, causal: bool, backward: bool, spec: dict) -> float | None:
    b, h, length, d, m = (spec[x] for x in ("batch", "heads", "length", "head_dim", "features"))
    if kind.startswith("favor") or kind == PEER:
        fwd = 8 * length * m * d
    elif kind == "exact":
        fwd = (2 if causal else 4) * length * length * d
    else:
        return None
    return fwd * b * h * (3 if backward else 1)


# glibc returns every freed block above 32 MiB to the OS, so each new [L, m] tensor costs a
# page fault per 4 KiB (more than the arithmetic on it at large L). These settings keep freed
# memory in the heap for reuse, as jemalloc/tcmalloc would.
MALLOC_CACHE_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(2**34),
    "MALLOC_TRIM_THRESHOLD_": str(2**34),
    "MALLOC_TOP_PAD_": str(2**30),
}


def _subprocess_case(spec: dict, timeout: float, malloc_cache: bool = False) -> dict:
    cmd = [sys.executable, "-m", "protein_performer.benchmarks.attention", json.dumps(spec)]
    env = {**os.environ, **MALLOC_CACHE_ENV} if malloc_cache else None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:200]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _in_process_case(spec: dict) -> dict:
    """One case in this process (``--in-process``: no interpreter and CUDA start per case).
    CUDA peaks stay exact: the allocator's peak is reset and its cache emptied first; an
    out-of-memory or other error becomes the case's error, as in a subprocess."""
    import gc

    import torch

    gc.collect()
    if spec["device"] == "cuda":
        torch.cuda.empty_cache()
    try:
        return run_case(spec)
    except Exception as exc:  # OOM at the largest L, a kind that cannot run this dtype...
        return {
            "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        }


def bench_attention(args: AttentionBench) -> "object":
    """Time every case of ``args``, print the table and the targets, write CSV and plot."""
    import pandas as pd
    import torch

    kinds = args.kinds or sorted(ATTENTION_REGISTRY)
    for kind in kinds:
        if kind not in ATTENTION_REGISTRY and kind != PEER:
            raise ValueError(
                f"--kinds: unknown kind {kind!r}; registered: {sorted(ATTENTION_REGISTRY)}"
            )
    if args.peer and PEER not in kinds:
        if _peer_available():
            kinds.append(PEER)
        else:
            print(
                f"peer {PEER} not importable: skipped (pip install performer-pytorch==1.1.4 "
                "local-attention==1.4.4 einops --no-deps)"
            )
    device = args.device
    peak = matmul_peak_gflops(device, args.matmul_size)
    print(
        f"device {device}, dtype {args.dtype}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {args.matmul_size}x{args.matmul_size} fp32 matmul: "
        f"{peak:.0f} GFLOP/s; "
        f"glibc malloc cache {'on' if args.malloc_cache else 'off'}"
    )
    rows = []
    for causal in args.causal:
        for pas in args.passes:
            for kind, impl in _series(kinds, causal, args.impls):
                label = kind if impl == "auto" else f"{kind}:{impl}"
                stop = None
                for length in args.lengths:
                    # chunk None: the implementation's default (favor.causal.DEFAULT_CHUNK)
                    spec = {
                        "kind": kind,
                        "causal": causal,
                        "pass": pas,
                        "length": length,
                        "batch": args.batch,
                        "heads": args.heads,
                        "head_dim": args.head_dim,
                        "features": args.features,
                        "chunk_size": args.chunk_size,
                        "causal_impl": impl,
                        "matmul_precision": args.matmul_precision,
                        "matmul_size": args.matmul_size,
                        "device": device,
                        "dtype": args.dtype,
                        "repeats": args.repeats,
                        "budget_s": args.max_case_seconds,
                    }
                    row = {
                        "kind": label,
                        "mode": "causal" if causal else "bidirectional",
                        "pass": pas,
                        "L": length,
                    }
                    if stop:
                        row["note"] = stop
                        rows.append(row)
                        continue
                    res = (
                        _in_process_case(spec)
                        if args.in_process
                        else _subprocess_case(
                            spec, timeout=args.timeout, malloc_cache=args.malloc_cache
                        )
                    )
                    if "error" in res:
                        row["note"] = res["error"]
                        stop = f"skipped (L={length}: {res['error'][:40]})"
                    else:
                        fl = flops(kind, causal, pas == "fwd+bwd", spec)
                        row.update(
                            time_ms=1e3 * res["time_s"],
                            median_ms=1e3 * res["median_s"],
                            runs=res["runs"],
                            peak_mib=res["peak_bytes"] / 2**20,
                        )
                        if "impl" in res:
                            row["impl"] = res["impl"]
                        if fl:
                            row["gflops"] = fl / res["time_s"] / 1e9
                            row["pct_matmul_peak"] = 100 * row["gflops"] / peak
                            if "matmul_gflops" in res:
                                row["matmul_beside"] = res["matmul_gflops"]
                                row["pct_matmul_beside"] = (
                                    100 * row["gflops"] / res["matmul_gflops"]
                                )
                        if res["time_s"] > args.max_case_seconds:
                            stop = f"skipped (L={length} took {res['time_s']:.0f} s)"
                    rows.append(row)
                    print(_line(row), flush=True)
    df = pd.DataFrame(rows)
    if "time_ms" in df:
        exact = {
            (r["mode"], r["pass"], int(r["L"])): r["time_ms"]
            for _, r in df[df.kind == "exact"].iterrows()
        }
        df["speedup_vs_exact"] = [
            exact.get((r["mode"], r["pass"], int(r["L"])), math.nan) / r["time_ms"]
            for _, r in df.iterrows()
        ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "attention.csv", index=False)
    _plot(df, out / "attention.png")
    print()
    print(df.to_markdown(index=False, floatfmt=".1f"))
    print()
    for line in check_targets(df):
        print(line)
    print(f"\nwrote {out / 'attention.csv'} and {out / 'attention.png'}")
    return df


def _series(kinds: list[str], causal: bool, impls: list[str]) -> list[tuple[str, str]]:
    """(kind, causal_impl) pairs to time: causal FAVOR+ once per implementation asked for,
    everything else once (the implementation choice is causal FAVOR+'s only)."""
    return [
        (kind, impl)
        for kind in kinds
        for impl in (impls if causal and kind.startswith("favor") else ["auto"])
    ]


def _line(row: dict) -> str:
    if "time_ms" not in row:
        return f"{row['kind']:>24} {row['mode']:>13} {row['pass']:>7} L={row['L']:>6}  {row.get('note', '')}"
    g = f"{row['gflops']:7.1f} GFLOP/s ({row['pct_matmul_peak']:4.1f}%" if "gflops" in row else ""
    if g:
        g += f"; {row['pct_matmul_beside']:4.1f}% beside)" if "pct_matmul_beside" in row else ")"
    return (
        f"{row['kind']:>24} {row['mode']:>13} {row['pass']:>7} L={row['L']:>6} "
        f"{row['time_ms']:10.1f} ms {row['peak_mib']:9.1f} MiB {g}"
    )


def check_targets(df) -> list[str]:
    """The issue's targets, evaluated on this run's numbers (n/a where not measured)."""

    def t(kind, mode, pas, length, col="time_ms"):
        sel = df[(df.kind == kind) & (df["mode"] == mode) & (df["pass"] == pas) & (df.L == length)]
        if col not in sel or sel.empty or sel[col].isna().all():
            return math.nan
        return float(sel[col].iloc[0])

    def verdict(ok):
        return "n/a " if ok is None else ("PASS" if ok else "FAIL")

    out = ["targets (float32, this run):"]
    fb = "fwd+bwd"
    r = t("exact", "bidirectional", fb, 8192) / t("favor_softmax", "bidirectional", fb, 8192)
    out.append(
        f"  {verdict(None if r != r else r >= 6)} bidirectional favor_softmax fwd+bwd at L=8192 "
        f">= 6x faster than exact: {r:.1f}x"
    )
    ls = sorted(set(df.L[df.L >= 1024]))
    sp = [
        t("exact", "bidirectional", fb, x) / t("favor_softmax", "bidirectional", fb, x) for x in ls
    ]
    sp = [s for s in sp if s == s]
    out.append(
        f"  {verdict(None if not sp else min(sp) > 1)} bidirectional favor faster than exact from "
        f"L=1024: min speedup {min(sp) if sp else math.nan:.2f}x"
    )
    r = t("exact", "causal", fb, 8192) / t("favor_softmax", "causal", fb, 8192)
    out.append(
        f"  {verdict(None if r != r else r >= 3)} causal favor_softmax fwd+bwd at L=8192 "
        f">= 3x faster than causal exact: {r:.1f}x"
    )
    ls = sorted(set(df.L[df.L >= 4096]))
    sp = [t("exact", "causal", fb, x) / t("favor_softmax", "causal", fb, x) for x in ls]
    sp = [s for s in sp if s == s]
    out.append(
        f"  {verdict(None if not sp else min(sp) > 1)} causal favor faster than causal exact from "
        f"L=4096: min speedup {min(sp) if sp else math.nan:.2f}x"
    )
    r = t("favor_softmax", "causal", fb, 8192) / t("favor_softmax", "bidirectional", fb, 8192)
    out.append(
        f"  {verdict(None if r != r else r <= 2)} causal within 2x of bidirectional favor at "
        f"L=8192: {r:.2f}x"
    )
    m32 = t("favor_softmax", "causal", fb, 32768, "peak_mib")
    m8 = t("favor_softmax", "causal", fb, 8192, "peak_mib")
    out.append(
        f"  {verdict(None if m32 != m32 or m8 != m8 else m32 <= 4.5 * m8)} causal memory linear: "
        f"peak(32768)/peak(8192) = {m32 / m8:.2f} (<= 4.5)"
    )
    out.append(
        f"  {verdict(None if m32 != m32 else m32 < 2048)} causal fwd+bwd peak at L=32768 "
        f"< 2 GiB: {m32:.0f} MiB"
    )
    if "pct_matmul_peak" in df:
        for mode in ("bidirectional", "causal"):
            # the library's own choice (auto), not the forced implementations ("kind:impl")
            sel = df[
                df.kind.isin(["favor_softmax", "favor_relu"])
                & (df["mode"] == mode)
                & (df.L >= 4096)
            ]
            pct = sel["pct_matmul_peak"].dropna()
            line = (
                f"  {verdict(None if pct.empty else pct.min() >= 40)} {mode} FAVOR+ >= 40% of "
                f"matmul peak at L>=4096: min {pct.min() if not pct.empty else math.nan:.1f}%"
            )
            beside = sel["pct_matmul_beside"].dropna() if "pct_matmul_beside" in sel else pct[:0]
            if not beside.empty:
                line += f" (of the rate measured beside each case: min {beside.min():.1f}%)"
            out.append(line)

    def min_ratio(slow: str, fast: str, mode: str) -> float:
        """min over L >= 1024 of time(slow) / time(fast), fwd+bwd, where both were measured."""
        rs = [t(slow, mode, fb, x) / t(fast, mode, fb, x) for x in sorted(set(df.L[df.L >= 1024]))]
        rs = [r for r in rs if r == r]
        return min(rs) if rs else math.nan

    for mode in ("bidirectional", "causal"):
        r = min_ratio(PEER, "favor_softmax", mode)
        out.append(
            f"  {verdict(None if r != r else r >= 1.5)} {mode} favor_softmax >= 1.5x the "
            f"{PEER} peer: min {r:.2f}x"
        )
    for kind in ("aft_simple", "aft_conv"):
        rs = [min_ratio("favor_softmax", kind, mode) for mode in ("bidirectional", "causal")]
        rs = [r for r in rs if r == r]
        r = min(rs) if rs else math.nan
        out.append(
            f"  {verdict(None if r != r else r > 1)} {kind} faster than favor_softmax at every "
            f"L>=1024: min {r:.2f}x"
        )
    return out


def _plot(df, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "time_ms" not in df:
        return
    modes = [m for m in ("bidirectional", "causal") if m in set(df["mode"])]
    # one colour per kind (the same in every panel), solid fwd+bwd, dashed fwd
    palette = plt.get_cmap("tab10").colors
    colour = {k: palette[i % len(palette)] for i, k in enumerate(sorted(set(df["kind"])))}
    fig, axes = plt.subplots(2, len(modes), figsize=(6 * len(modes), 9), squeeze=False)
    for j, mode in enumerate(modes):
        for (kind, pas), g in (
            df[df["mode"] == mode].dropna(subset=["time_ms"]).groupby(["kind", "pass"])
        ):
            style = dict(
                linestyle="-" if pas == "fwd+bwd" else "--",
                marker="o",
                markersize=3,
                color=colour[kind],
                label=f"{kind} {pas}",
            )
            axes[0, j].loglog(g.L, g.time_ms / 1e3, **style)
            axes[1, j].loglog(g.L, g.peak_mib.clip(lower=1e-1), **style)
        axes[0, j].set_title(f"{mode}: time")
        axes[1, j].set_title(f"{mode}: peak memory above inputs")
        axes[0, j].set_ylabel("seconds")
        axes[1, j].set_ylabel("MiB")
        for ax in axes[:, j]:
            ax.set_xlabel("sequence length L")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":  # one case in a fresh process (see _subprocess_case)
    print(json.dumps(run_case(json.loads(sys.argv[1]))))
