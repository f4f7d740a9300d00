"""Cost of a training step whose batch shape changes every step (token-budget batches) against
a fixed 32 x 256 batch, in bf16 autocast and float32, for the tiny causal model on CPU.

    python scripts/bench_varying_shapes.py --steps 15
    python scripts/bench_varying_shapes.py --steps 40 --warm-all  # steady state: shapes seen before

Varying: each step draws a length L in [150, 256] and a batch of 8192 // L rows (the token-budget
sampler's shapes); bucketed: the same lengths rounded up to a multiple of 32 (4 shapes); fixed:
32 x 256. ``--warm-all`` first runs one step of every shape the mode can draw, so the timed steps
see only shapes met before (as in a long run). Prints ms per step and per 1k tokens (forward,
backward, AdamW step).
"""

from __future__ import annotations

import argparse
import random
import time

import torch
import torch.nn.functional as F

from protein_performer.model import ModelConfig, PerformerLM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--warm-all", action="store_true", help="one step of every shape first")
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = random.Random(0)
    cfg = dict(d_model=128, n_layers=2, n_heads=4, d_ff=256, dropout=0.0, max_length=256)
    model = PerformerLM(
        ModelConfig.from_dict({**cfg, "causal": True, "attention": {"kind": "exact"}})
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(batch: int, length: int, bf16: bool) -> None:
        tokens = torch.randint(6, 26, (batch, length))
        mask = torch.ones(batch, length, dtype=torch.bool)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(tokens, mask)
        loss = F.cross_entropy(logits.float().flatten(0, 1), tokens.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad()

    def length(mode: str) -> int:
        if mode == "fixed":
            return 256
        n = rng.randint(150, 256)
        return min(256, -(-n // 32) * 32) if mode == "bucketed" else n

    pools = {"fixed": [256], "varying": list(range(150, 257)), "bucketed": [160, 192, 224, 256]}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for bf16 in (True, False):
        for mode in ("fixed", "varying", "bucketed"):
            for _ in range(args.warmup):
                step(32, 256, bf16)
            if args.warm_all:
                for n in pools[mode]:
                    step(8192 // n, n, bf16)
            tokens = 0
            t0 = time.perf_counter()
            for _ in range(args.steps):
                n = length(mode)
                rows = 32 if mode == "fixed" else 8192 // n
                tokens += rows * n
                step(rows, n, bf16)
            seconds = time.perf_counter() - t0
            print(
                f"{'bf16' if bf16 else 'fp32'} {mode}: {seconds / args.steps * 1000:.0f} ms/step, "
                f"{seconds / tokens * 1e6:.1f} ms per 1k tokens"
            )


if __name__ == "__main__":
    main()
