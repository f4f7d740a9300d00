"""Time and peak memory of every attention kind vs L (run by ``protein-performer-bench attention``).

Each case (kind, bidirectional/causal, fwd or fwd+bwd, L) runs in a fresh subprocess so that
its peak memory can be read cleanly (:mod:`~protein_performer.benchmarks.attention_case`:
how a case is measured). Time is the best of a few runs after one warm-up run (the warm-up is
the memory-measured one). GFLOP/s (:mod:`~protein_performer.benchmarks.attention_targets`:
the FLOP counts and the targets) are printed next to a 2048 x 2048 float32 matmul rate
measured at the start of the run, and next to the rate measured beside the case (before each
of its timed runs, in its process).
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
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from protein_performer.attention import ATTENTION_REGISTRY
from protein_performer.benchmarks.attention_case import PEER, matmul_peak_gflops, run_case
from protein_performer.benchmarks.attention_targets import check_targets, flops
from protein_performer.errors import InputError

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


def _peer_available() -> bool:
    try:
        import performer_pytorch  # noqa: F401
    except Exception:
        return False
    return True


# glibc returns every freed block above 32 MiB to the OS, so each new [L, m] tensor costs a
# page fault per 4 KiB (more than the arithmetic on it at large L). These settings keep freed
# memory in the heap for reuse, as jemalloc/tcmalloc would.
MALLOC_CACHE_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(2**34),
    "MALLOC_TRIM_THRESHOLD_": str(2**34),
    "MALLOC_TOP_PAD_": str(2**30),
}


def _subprocess_case(spec: dict, timeout: float, malloc_cache: bool = False) -> dict:
    cmd = [sys.executable, "-m", "protein_performer.benchmarks.attention_case", json.dumps(spec)]
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

    gc.collect()
    if spec["device"] == "cuda":
        torch.cuda.empty_cache()
    try:
        return run_case(spec)
    except Exception as exc:  # OOM at the largest L, a kind that cannot run this dtype...
        return {
            "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        }


def bench_attention(args: AttentionBench) -> object:
    """Time every case of ``args``, print the table and the targets, write CSV and plot."""
    kinds = args.kinds or sorted(ATTENTION_REGISTRY)
    for kind in kinds:
        if kind not in ATTENTION_REGISTRY and kind != PEER:
            raise InputError(
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
    # matplotlib loads only when the figure is drawn
    from protein_performer.benchmarks.attention_figures import plot_attention

    plot_attention(df, out / "attention.png")
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
        return (
            f"{row['kind']:>24} {row['mode']:>13} {row['pass']:>7} L={row['L']:>6}  "
            f"{row.get('note', '')}"
        )
    g = f"{row['gflops']:7.1f} GFLOP/s ({row['pct_matmul_peak']:4.1f}%" if "gflops" in row else ""
    if g:
        g += f"; {row['pct_matmul_beside']:4.1f}% beside)" if "pct_matmul_beside" in row else ")"
    return (
        f"{row['kind']:>24} {row['mode']:>13} {row['pass']:>7} L={row['L']:>6} "
        f"{row['time_ms']:10.1f} ms {row['peak_mib']:9.1f} MiB {g}"
    )
