"""Variants/s of the dms task's model scorers on GB1 doubles (Olson 2014), per batch budget.

    python scripts/bench_dms.py --data data/benchmarks --ckpt outputs/demo/train/checkpoints/last.ckpt
    python scripts/bench_dms.py --data data/benchmarks --ckpt CK --variants 530737 --budgets 65536

Times :func:`protein_performer.benchmarks.variant_scoring.score_assay` on a seeded sample of
``--variants`` GB1 doubles (after one warm-up call on 200 of them, so the C++ causal kernel is
loaded), with the checkpoint's objective and, with ``--mlm``, the same config as a masked LM
at random initialisation (masked marginals cost one row per mutated site, not per variant).
Prints variants/s and the time all 530,737 doubles would take at that rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch


def main() -> None:
    from protein_performer.benchmarks.dms import sample_rows
    from protein_performer.benchmarks.dms_data import load_assays
    from protein_performer.benchmarks.variant_scoring import score_assay
    from protein_performer.model.lm import PerformerLM
    from protein_performer.runner import Engine, load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder filled by fetch-benchmarks")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--variants", type=int, default=20000)
    p.add_argument("--budgets", type=int, nargs="+", default=[16384, 65536])
    p.add_argument("--mlm", action="store_true", help="also time a masked LM of the same size")
    args = p.parse_args()

    (gb1,) = load_assays(args.data, ["GB1_Olson2014"])
    assay = sample_rows(gb1, args.variants, 0)
    loaded = load_model(args.ckpt)
    models = {loaded.objective.name: loaded.model}
    if args.mlm:
        torch.manual_seed(0)
        attention = dataclasses.replace(loaded.model_cfg.attention, causal=None)
        cfg = dataclasses.replace(loaded.model_cfg, causal=False, attention=attention)
        models["mlm"] = PerformerLM(cfg).eval()
    print(f"torch threads {torch.get_num_threads()}, {len(assay)} GB1 doubles")
    for objective, model in models.items():
        engine = Engine(model, "cpu")
        score_assay(engine, objective, assay.subset(range(200)), model.cfg.max_length)
        for budget in args.budgets:
            t0 = time.perf_counter()
            score_assay(engine, objective, assay, model.cfg.max_length, budget=budget)
            rate = len(assay) / (time.perf_counter() - t0)
            print(
                f"{objective} budget {budget}: {rate:,.0f} variants/s "
                f"(all 530,737: {530737 / rate / 60:.1f} min)"
            )


if __name__ == "__main__":
    main()
