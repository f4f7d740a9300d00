"""Generation benchmark: time per token vs length, recurrent decoding vs full recomputation.

    PYTHONPATH=. python scripts/bench_generate.py --lengths 256 512 1024 2048 4096

One decoder per kind runs to the longest length; the time per token is the median over the 32
tokens before each length. Full recomputation = one causal forward over the whole prefix
(what a decoder without state pays per token), only up to --recompute-max. State memory =
bytes of all layers' decoding states at that length. Writes CSV (and a PNG) to --out.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch

from protein_performer.attention import AttentionConfig
from protein_performer.inference.decoder import RecurrentDecoder
from protein_performer.model import ModelConfig
from protein_performer.model.lm import PerformerLM


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    ap.add_argument("--kinds", nargs="+", default=["favor_softmax", "aft_simple", "exact"])
    ap.add_argument("--recompute-max", type=int, default=1024)
    ap.add_argument("--out", default="bench_results/generate")
    args = ap.parse_args()
    torch.manual_seed(0)
    top = max(args.lengths)
    rows = []
    for kind in args.kinds:
        cfg = ModelConfig(
            d_model=128,
            n_layers=2,
            n_heads=4,
            d_ff=256,
            max_length=top + 1,
            dropout=0.0,
            causal=True,
            position="rotary",
            attention=AttentionConfig(kind=kind),
        )
        model = PerformerLM(cfg).eval()
        dec = RecurrentDecoder(model, 1)
        tok = torch.full((1,), 7)
        times = []
        for t in range(top):
            t0 = time.perf_counter()
            dec.step(tok)
            times.append(time.perf_counter() - t0)
            if t + 1 in args.lengths:
                per = sorted(times[-32:])[16]  # median: robust to load spikes on a shared CPU
                state_b = sum(s.numel() * 4 for s in [st for st in dec.states])
                full = None
                if t + 1 <= args.recompute_max:
                    x = torch.full((1, t + 1), 7)
                    with torch.no_grad():
                        model(x)
                        t1 = time.perf_counter()
                        for _ in range(3):
                            model(x)
                        full = (time.perf_counter() - t1) / 3
                rows.append(
                    {
                        "kind": kind,
                        "length": t + 1,
                        "recurrent_ms_per_token": per * 1e3,
                        "recurrent_tokens_per_s": 1 / per,
                        "state_bytes": state_b,
                        "recompute_ms_per_token": None if full is None else full * 1e3,
                    }
                )
                print(rows[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "generate.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(
        f"{'kind':14s} {'L':>6s} {'rec ms/tok':>10s} {'tok/s':>8s} {'state KiB':>10s} "
        f"{'recompute ms/tok':>16s}"
    )
    for r in rows:
        rc = "-" if r["recompute_ms_per_token"] is None else f"{r['recompute_ms_per_token']:.2f}"
        print(
            f"{r['kind']:14s} {r['length']:6d} {r['recurrent_ms_per_token']:10.3f} "
            f"{r['recurrent_tokens_per_s']:8.0f} {r['state_bytes'] / 1024:10.1f} {rc:>16s}"
        )
    try:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for kind in args.kinds:
            rs = [r for r in rows if r["kind"] == kind]
            ax.plot(
                [r["length"] for r in rs],
                [r["recurrent_ms_per_token"] for r in rs],
                "o-",
                label=f"{kind} recurrent",
            )
            rc = [r for r in rs if r["recompute_ms_per_token"] is not None]
            ax.plot(
                [r["length"] for r in rc],
                [r["recompute_ms_per_token"] for r in rc],
                "x--",
                label=f"{kind} recompute",
            )
        ax.set(xscale="log", yscale="log", xlabel="length", ylabel="ms / token")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "generate.png", dpi=120)
    except ImportError:
        pass


if __name__ == "__main__":
    main()
