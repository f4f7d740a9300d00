"""Training steps/s of a model eager vs ``torch.compile`` (inductor) on this machine.

    python scripts/bench_compile.py                      # tiny CLM exact, bf16 autocast, 32 x 256
    python scripts/bench_compile.py attention=favor_relu --steps 60

Runs eager, compiled, eager (alternated, so a slow spell of a shared machine hits both) over the
same random batch with AdamW; times the steps after ``--warmup`` (compilation happens there and
is reported apart). Trailing arguments are Hydra overrides of conf/train.yaml.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F


def _steps_per_s(model_cfg, compiled: bool, steps: int, warmup: int, batch: int, bf16: bool):
    from protein_performer.model.lm import PerformerLM

    torch.manual_seed(0)
    model = PerformerLM(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    forward = torch.compile(model) if compiled else model
    x = torch.randint(4, 24, (batch, model_cfg.max_length))
    t0 = time.perf_counter()
    for i in range(steps):
        if i == warmup:
            t_warm = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(x[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    t1 = time.perf_counter()
    return (steps - warmup) / (t1 - t_warm), t_warm - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    from protein_performer.cli.config import build_setup, compose_train

    overrides = ["model=tiny", "objective=clm", "attention=exact", *args.overrides]
    setup = build_setup(compose_train(overrides, output_dir="bench_results/compile"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {' '.join(overrides)}")
    for compiled in (False, True, False):
        rate, first = _steps_per_s(
            setup.model, compiled, args.steps, args.warmup, args.batch, not args.fp32
        )
        name = "compiled" if compiled else "eager"
        print(f"{name:8s} {rate:6.2f} steps/s  (first {args.warmup} steps: {first:.1f} s)")


if __name__ == "__main__":
    main()
