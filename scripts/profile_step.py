"""Where one training step's time goes, and how close its matmuls run to this CPU's GEMM rate.

    python scripts/profile_step.py                                   # make demo's recipe
    python scripts/profile_step.py --out bench_results/profile_step data.mode=packed

Builds the model and batches as ``protein-performer-train experiment=demo`` does (trailing
arguments are Hydra overrides of conf/train.yaml), times a bare AdamW loop over fixed batches
(best of ``--repeats`` blocks of ``--steps`` steps after ``--warmup``), profiles ``--profile``
steps with ``torch.profiler`` (operators by self CPU time), and times float32 GEMMs of the
model's own shapes (``tokens x d_model x width``, forward and weight gradient) beside one large
square GEMM, the machine's reference rate. Prints three tables and writes ``step.csv``,
``operators.csv`` and ``gemms.csv`` under ``--out``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train_loop import _module, _setup, bare_update  # noqa: E402


def _gemm_rate(m: int, k: int, n: int, repeats: int) -> tuple[float, float]:
    """(GFLOPS, ms) of a float32 [m, k] @ [k, n], best of ``repeats`` after 3 warm-ups."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * m * k * n / best / 1e9, best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks (the best counts)")
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--profile", type=int, default=10, help="steps under torch.profiler")
    parser.add_argument("--top", type=int, default=12, help="operators shown")
    parser.add_argument("--out", type=Path, default=Path("bench_results/profile_step"))
    args, overrides = parser.parse_known_args()
    from protein_performer.training.optim import build_optimizer, build_scheduler

    args.out.mkdir(parents=True, exist_ok=True)
    cfg_overrides = ["experiment=demo", "budget.minutes=null", *overrides]
    _, setup = _setup(cfg_overrides, args.out / "run", 100)
    dm, module = _module(setup)
    dm.setup("fit")
    model = module.model.train()
    opt = build_optimizer(model, setup.optim)
    sched = build_scheduler(opt, setup.optim, 10_000)
    it = iter(dm.train_dataloader())
    n_batches = 30
    batches = [next(it) for _ in range(n_batches)]

    def step(i: int) -> None:
        loss = module.compute_loss(batches[i % n_batches], torch.Generator().manual_seed(i))
        bare_update(model, opt, sched, loss["loss"])

    for i in range(args.warmup):
        step(i)
    blocks = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        for i in range(args.steps):
            step(i)
        blocks.append((time.perf_counter() - t) / args.steps)
    sec = min(blocks)
    real = sum(int(b["mask"].sum()) for b in batches) / n_batches
    slots = sum(b["tokens"].numel() for b in batches) / n_batches
    step_row = {
        "overrides": " ".join(overrides) or "(the demo)",
        "ms_per_step": round(sec * 1e3, 1),
        "steps_per_s": round(1 / sec, 3),
        "real_tokens_per_step": round(real),
        "token_slots_per_step": round(slots),
        "real_tok_per_s": round(real / sec),
        "threads": torch.get_num_threads(),
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.processor() or platform.machine(),
    }
    print(pd.DataFrame([step_row]).to_string(index=False))

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(args.profile):
            step(i)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    ops = pd.DataFrame(
        [
            {
                "operator": e.key,
                "self_ms_per_step": round(e.self_cpu_time_total / 1e3 / args.profile, 2),
                "share": round(e.self_cpu_time_total / total, 3),
                "calls_per_step": e.count / args.profile,
            }
            for e in events
        ]
    )
    print(f"\noperators by self CPU time ({args.profile} profiled steps)")
    print(ops.head(args.top).to_string(index=False))

    cfg = setup.model
    tokens = int(slots)
    shapes = {
        "qkv (forward)": (tokens, cfg.d_model, 3 * cfg.d_model),
        "out projection": (tokens, cfg.d_model, cfg.d_model),
        "ff up": (tokens, cfg.d_model, cfg.d_ff),
        "ff down": (tokens, cfg.d_ff, cfg.d_model),
        "qkv weight gradient": (3 * cfg.d_model, tokens, cfg.d_model),
        "ff up weight gradient": (cfg.d_ff, tokens, cfg.d_model),
        "reference 4096^3": (4096, 4096, 4096),
    }
    rows = []
    for name, (m, k, n) in shapes.items():
        rate, ms = _gemm_rate(m, k, n, repeats=3 if m == 4096 else 20)
        rows.append(
            {"gemm": name, "m": m, "k": k, "n": n, "ms": round(ms, 2), "gflops": round(rate, 1)}
        )
    gemms = pd.DataFrame(rows)
    print("\nfloat32 GEMMs of the model's shapes beside the reference")
    print(gemms.to_string(index=False))

    pd.DataFrame([step_row]).to_csv(args.out / "step.csv", index=False)
    ops.to_csv(args.out / "operators.csv", index=False)
    gemms.to_csv(args.out / "gemms.csv", index=False)
    print(f"\nwrote {args.out}/step.csv, operators.csv, gemms.csv")


if __name__ == "__main__":
    main()
