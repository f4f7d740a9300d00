"""Variants/s of the dms task's model scorers on GB1 doubles (Olson 2014), per batch budget.

    python scripts/bench_dms.py --data data/benchmarks \\
        --ckpt outputs/demo/train/checkpoints/last.ckpt
    python scripts/bench_dms.py --data data/benchmarks --tiny favor_softmax --variants all \\
        --threads 2 --mlm --csv outputs/bench_dms.csv

Times :func:`protein_performer.benchmarks.variant_scoring.score_assay` on a seeded sample of
``--variants`` GB1 doubles (``all``: the 530,737) after one warm-up call on 200 of them (so
the C++ causal kernel is loaded). The model is a checkpoint's (``--ckpt``) or, with
``--tiny KIND``, the cpu_study model (conf/model/tiny.yaml, ``KIND`` attention, causal) at
random initialisation: the weights do not change the speed. ``--mlm`` also times the same
config as a masked LM (one row per mutated site, not per variant); ``--full-rows`` also times
the CLM with one full row per variant (the path of kinds without decoding states). Prints
variants/s of wall time and of the process's CPU time (steadier on a shared machine) and the
time all 530,737 doubles would take; ``--csv`` writes the rows.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import time
from pathlib import Path
from unittest import mock

import torch
import yaml

ALL_GB1 = 530737
TINY = Path(__file__).resolve().parents[1] / "conf" / "model" / "tiny.yaml"


def tiny_model(kind: str):
    """The cpu_study model shape (conf/model/tiny.yaml) with ``kind`` attention, causal."""
    from protein_performer.attention.config import AttentionConfig
    from protein_performer.model.config import ModelConfig
    from protein_performer.model.lm import PerformerLM

    values = yaml.safe_load(TINY.read_text())
    attention = AttentionConfig(kind=kind, **values.pop("attention"))
    torch.manual_seed(0)
    return PerformerLM(ModelConfig(**values, causal=True, attention=attention)).eval()


def main() -> None:
    from protein_performer.benchmarks import variant_scoring
    from protein_performer.benchmarks.dms import sample_rows
    from protein_performer.benchmarks.dms_data import load_assays
    from protein_performer.model.lm import PerformerLM
    from protein_performer.runner import Engine, load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder filled by fetch-benchmarks")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt")
    source.add_argument("--tiny", metavar="KIND", help="cpu_study model, KIND attention")
    p.add_argument("--variants", default="20000", help="how many GB1 doubles, or 'all'")
    p.add_argument("--budgets", type=int, nargs="+", default=[65536])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--mlm", action="store_true", help="also time a masked LM of the same size")
    p.add_argument("--full-rows", action="store_true", help="also time CLM one row per variant")
    p.add_argument("--csv", type=Path, help="write the timings here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    (gb1,) = load_assays(args.data, ["GB1_Olson2014"])
    n = len(gb1) if args.variants == "all" else min(int(args.variants), len(gb1))
    assay = gb1 if n == len(gb1) else sample_rows(gb1, n, 0)
    model = load_model(args.ckpt).model if args.ckpt else tiny_model(args.tiny)
    objective = "clm" if model.cfg.causal else "mlm"
    runs = [(objective, "shared prefixes" if objective == "clm" else "masked marginals", model)]
    if args.full_rows and objective == "clm":
        runs.append(("clm", "full rows", model))
    if args.mlm:
        torch.manual_seed(0)
        attention = dataclasses.replace(model.cfg.attention, causal=None)
        cfg = dataclasses.replace(model.cfg, causal=False, attention=attention)
        runs.append(("mlm", "masked marginals", PerformerLM(cfg).eval()))
    kind = model.cfg.attention.kind
    print(f"torch threads {torch.get_num_threads()}, {len(assay):,} GB1 doubles, {kind}")
    out = []
    for objective, path, m in runs:
        engine = Engine(m, "cpu")
        full = mock.patch.object(variant_scoring, "walks_from_prefix", lambda _: False)
        with full if path == "full rows" else contextlib.nullcontext():
            variant_scoring.score_assay(engine, objective, assay.subset(range(200)), 256)
            for budget in args.budgets:
                cpu, wall = time.process_time(), time.perf_counter()
                variant_scoring.score_assay(
                    engine, objective, assay, m.cfg.max_length, budget=budget
                )
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                rate = len(assay) / wall
                print(
                    f"{objective} ({path}) budget {budget}: {rate:,.0f} variants/s "
                    f"({len(assay) / cpu:,.0f} per CPU-second; all {ALL_GB1:,}: "
                    f"{ALL_GB1 / rate / 60:.1f} min)"
                )
                out.append(
                    dict(
                        objective=objective,
                        path=path,
                        attention=kind,
                        threads=torch.get_num_threads(),
                        variants=len(assay),
                        budget=budget,
                        wall_s=round(wall, 3),
                        cpu_s=round(cpu, 3),
                        variants_per_s=round(rate, 1),
                        variants_per_cpu_s=round(len(assay) / cpu, 1),
                    )
                )
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(out[0]))
            writer.writeheader()
            writer.writerows(out)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
