"""`make demo`'s main job in six stages, with progress, an ETA and each stage's output path.

    python scripts/demo.py                        # outputs/demo, seed 0 (what `make demo` runs)
    python scripts/demo.py --out outputs/demo_s1 --seed 1
    python scripts/demo.py --train budget.minutes=null  # the recipe's full step count, however long
    python scripts/demo.py --no-benchmarks        # the five stages without the benchmark data

Stages: [1/6] data stats of the embedded corpus, [2/6] training (experiment=demo),
[3/6] evaluation against the unigram baseline, [4/6] attention vs BLOSUM62 beside the same
model at random init, plus FAVOR+'s error on the model's own q, k, [5/6] benchmarks: the
Abeta42 variant-effect assay (Spearman beside BLOSUM62's) and one held-out chain's contact map
(benchmark data fetched once into --benchmark-data, ~10 s from PyPI; reused when present),
[6/6] the summary (text + summary.png). Each stage runs its entry point as `python -m ...` in
a child process; the stage times go to <out>/timings.json. A failed stage stops the demo with
its exit status, except the benchmarks: offline (or failed), they say so in one line and the
summary goes on without them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "sample50k"
BENCHMARK_DATA = REPO / "data" / "benchmarks"  # the README's folder for fetch-benchmarks
RECIPE = REPO / "conf" / "experiment" / "demo.yaml"
# Rough seconds of each stage on the reference machine (2 idle cores, AVX512-BF16: the earlier
# demo spent ~1 minute outside training, docs/benchmarks.md), training excepted (its budget);
# scaled by how fast the first stage ran here, for the ETA only.
# benchmarks: ~15 s measured under load (2,000 Abeta42 variants, one contact map), + the fetch
NOMINAL_S = {"data": 15.0, "eval": 30.0, "analyze": 60.0, "benchmarks": 15.0, "summary": 10.0}
# the recipe's training steps per second there (cpu_study's favor_softmax: 6,000 in 15.1 min)
REFERENCE_STEPS_PER_S = 6.6


@dataclass
class Stage:
    """One step of the demo: a child process and the path a reader opens afterwards."""

    key: str
    title: str
    argv: list[str]
    output: Path
    seconds: float | None = None
    optional: bool = False  # a failure is reported and the demo goes on


def _module(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", name, *args]


def training_minutes(overrides: list[str]) -> float | None:
    """The training stage's wall-clock budget: ``budget.minutes`` of the recipe unless an
    override sets it (``null``: none)."""
    value: object = (yaml.safe_load(RECIPE.read_text()) or {}).get("budget", {}).get("minutes")
    for item in overrides:
        key, _, v = item.partition("=")
        if key.lstrip("+~") == "budget.minutes":
            value = yaml.safe_load(v)
    return None if value is None else float(value)


def build_stages(args: argparse.Namespace) -> list[Stage]:
    out = Path(args.out)
    corpus = Path(args.corpus)
    train_fa, valid_fa = corpus / "train.fasta.gz", corpus / "valid.fasta.gz"
    ckpt = out / "train" / "checkpoints" / "last.ckpt"
    eval_files = [str(valid_fa), *args.extra_eval]
    data_overrides = (
        [] if corpus == CORPUS else [f"data.train=[{train_fa}]", f"data.valid=[{valid_fa}]"]
    )
    stages = [
        Stage(
            "data",
            "data stats of the training corpus",
            _module(
                "protein_performer.cli.data",
                "stats",
                str(train_fa),
                "--out",
                str(out / "data_stats"),
            ),
            out / "data_stats" / "stats.json",
        ),
        Stage(
            "train",
            f"training a tiny FAVOR+ causal LM (experiment=demo, seed {args.seed})",
            _module(
                "protein_performer.train",
                "experiment=demo",
                f"seed={args.seed}",
                f"hydra.run.dir={out / 'train'}",
                *data_overrides,
                *args.train,
            ),
            ckpt,
        ),
        Stage(
            "eval",
            "perplexity on held-out proteins against the unigram baseline",
            _module(
                "protein_performer.cli.evaluate",
                f"ckpt_path={ckpt}",
                f"fasta=[{','.join(eval_files)}]",
                f"hydra.run.dir={out / 'eval'}",
                *args.eval,
            ),
            out / "eval" / "metrics.json",
        ),
        Stage(
            "analyze",
            "attention vs BLOSUM62 beside the random-init control; FAVOR+ error",
            # threshold 0: a model trained for minutes attends diffusely (no weight reaches the
            # default 0.1); the same model at random init is analysed beside it (the null);
            # 400 proteins, as the cpu_study's BLOSUM figures the recipe was chosen by
            _module(
                "protein_performer.cli.analyze",
                f"ckpt_path={ckpt}",
                f"fasta={valid_fa}",
                f"hydra.run.dir={out / 'analyze'}",
                "n_proteins=400",
                "threshold=0",
                "min_total_weight=0",
                "favor_error=true",
                *args.analyze,
            ),
            out / "analyze" / "blosum_comparison.json",
        ),
    ]
    if args.benchmarks:
        stages.append(
            Stage(
                "benchmarks",
                "Abeta42 variant effects vs BLOSUM62; one contact map (benchmark data)",
                _module(
                    "protein_performer.study.demo_benchmarks",
                    str(out / "benchmarks"),
                    "--ckpt",
                    str(ckpt),
                    "--data-dir",
                    str(args.benchmark_data),
                ),
                out / "benchmarks" / "benchmarks.json",
                optional=True,
            )
        )
    stages.append(
        Stage(
            "summary",
            "the summary",
            [sys.executable, str(REPO / "scripts" / "demo_summary.py"), str(out)],
            out / "summary.png",
        )
    )
    return stages


def training_speed(record: Path, default: float) -> float:
    """This machine's time per step / the reference's, from the budget's probe (the training
    run's time_budget.json), for the ETA of the stages after training; ``default`` without."""
    try:
        rate = float(json.loads(record.read_text())["steps_per_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return default
    return min(max(REFERENCE_STEPS_PER_S / rate, 0.5), 10.0) if rate > 0 else default


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


def eta_seconds(
    stages: list[Stage], index: int, train_minutes: float | None, speed: float
) -> float | None:
    """Seconds the stages from ``index`` on should still take: the nominal times scaled by
    ``speed`` (this machine's time / the reference's) and the training budget; None when
    training is still ahead and has no budget (its length is not known)."""
    total = 0.0
    for stage in stages[index:]:
        if stage.key == "train":
            if train_minutes is None:
                return None
            total += 60.0 * train_minutes + 20.0 * speed  # + start-up, the final checkpoint
        else:
            total += NOMINAL_S[stage.key] * speed
    return total


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    stages = build_stages(args)
    budget = training_minutes(args.train)
    env = {**os.environ, "MPLBACKEND": os.environ.get("MPLBACKEND", "Agg")}
    start = time.perf_counter()
    speed = 1.0
    n = len(stages)
    print(
        f"protein-performer demo -> {out}/ (stages: {', '.join(s.key for s in stages)})", flush=True
    )
    for i, stage in enumerate(stages):
        elapsed = time.perf_counter() - start
        eta = eta_seconds(stages, i, budget, speed)
        when = (
            "ETA unknown (training has no budget)"
            if eta is None
            else f"about {_clock(eta)} left, "
            f"ends ~{time.strftime('%H:%M', time.localtime(time.time() + eta))}"
        )
        print(f"\n[{i + 1}/{n}] {stage.title} ... (elapsed {_clock(elapsed)}; {when})", flush=True)
        if args.verbose:
            print("      $ " + shlex.join(stage.argv), flush=True)
        t0 = time.perf_counter()
        code = subprocess.call(
            stage.argv, env=env
        )  # in the caller's directory: relative paths hold
        stage.seconds = time.perf_counter() - t0
        if code != 0 and stage.optional:
            print(
                f"[{i + 1}/{n}] {stage.key} failed (exit status {code}); the demo goes on "
                "without it",
                flush=True,
            )
            continue
        if code != 0:
            print(
                f"[{i + 1}/{n}] {stage.key} failed (exit status {code}); its messages are above",
                flush=True,
            )
            _write_timings(out, stages, time.perf_counter() - start, failed=stage.key)
            return code
        if stage.key == "data":
            speed = min(max(stage.seconds / NOMINAL_S["data"], 0.5), 5.0)
        elif stage.key == "train":
            speed = training_speed(out / "train" / "time_budget.json", speed)
        print(
            f"[{i + 1}/{n}] {stage.key} done in {_clock(stage.seconds)} -> {stage.output}",
            flush=True,
        )
    total = time.perf_counter() - start
    _write_timings(out, stages, total)
    print(
        f"\ndemo done in {_clock(total)} ("
        + ", ".join(f"{s.key} {_clock(s.seconds or 0)}" for s in stages)
        + f"); timings: {out / 'timings.json'}",
        flush=True,
    )
    return 0


def _write_timings(out: Path, stages: list[Stage], total: float, failed: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "total_minutes": total / 60,
        "stages": {s.key: None if s.seconds is None else s.seconds / 60 for s in stages},
        "failed": failed,
        "load_average": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
    }
    (out / "timings.json").write_text(json.dumps(record, indent=2) + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default="outputs/demo", help="output directory (replaced)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument(
        "--corpus", default=str(CORPUS), help="directory with train.fasta.gz and valid.fasta.gz"
    )
    p.add_argument(
        "--extra-eval",
        action="append",
        default=[],
        metavar="FASTA",
        help="another held-out FASTA for the evaluation stage (repeatable), e.g. a test_ood split",
    )
    for stage in ("train", "eval", "analyze"):
        p.add_argument(
            f"--{stage}",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"a Hydra override for the {stage} stage (repeatable)",
        )
    p.add_argument(
        "--no-benchmarks",
        dest="benchmarks",
        action="store_false",
        help="skip the benchmarks stage (Abeta42 assay, one contact map; it fetches ~10 s of "
        "benchmark data from PyPI the first time)",
    )
    p.add_argument(
        "--benchmark-data",
        default=str(BENCHMARK_DATA),
        metavar="DIR",
        help="benchmark data folder, reused when it holds the files, else filled by "
        "protein-performer-data fetch-benchmarks (default: data/benchmarks)",
    )
    p.add_argument("--keep", action="store_true", help="do not delete an existing --out first")
    p.add_argument("-v", "--verbose", action="store_true", help="print each stage's command")
    args = p.parse_args(argv)
    corpus = Path(args.corpus)
    for name in ("train.fasta.gz", "valid.fasta.gz"):
        if not (corpus / name).is_file():
            p.error(
                f"--corpus: {corpus / name} not found "
                "(give a directory with train.fasta.gz and valid.fasta.gz)"
            )
    for path in args.extra_eval:
        if not Path(path).is_file():
            p.error(f"--extra-eval: {path} not found")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.keep:
        import shutil

        shutil.rmtree(out)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
