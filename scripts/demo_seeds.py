"""The whole demo for several seeds, one after the other, and one table of what each gave.

    python scripts/demo_seeds.py                         # seeds 0 1 2 -> outputs/demo_seeds/
    python scripts/demo_seeds.py --seeds 0 --out outputs/demo_seeds_quick
    python scripts/demo_seeds.py -- --train budget.minutes=null   # the recipe's full steps

Each seed runs `scripts/demo.py --seed S --out <out>/seed<S>` (arguments after `--` are passed
on). When ../shared/data/swissprot2014/test_ood.fasta.gz (or --test-ood) exists (whole
30%-identity clusters absent from training) the evaluation also scores it. Writes
<out>/seeds.csv and <out>/seeds.md: steps, held-out ratio to the unigram (valid, test_ood),
attention vs BLOSUM62 r and permutation p beside the random-init control, the minutes of the whole
demo and of
training, and the load average when the seed finished (timings on a shared machine are
pessimistic: say so beside them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TEST_OOD = REPO.parent / "shared" / "data" / "swissprot2014" / "test_ood.fasta.gz"


def seed_row(seed: int, demo_dir: Path) -> dict:
    """One table row from a finished (or failed) demo directory."""
    sys.path.insert(0, str(REPO))
    from protein_performer.study.demo import DemoOutputError, read_demo

    timings_path = demo_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    row: dict = {
        "seed": seed,
        "minutes": timings.get("total_minutes"),
        "train_minutes": (timings.get("stages") or {}).get("train"),
        "load_1min": (timings.get("load_average") or [None])[0],
    }
    try:
        n = read_demo(demo_dir)
    except DemoOutputError as err:
        return {**row, "status": f"failed: {err}"}
    ratios = {h.label.split(".")[0]: h.ratio for h in n.held_out}
    row.update(
        steps=n.steps,
        ratio_valid=ratios.get("valid"),
        ratio_test_ood=ratios.get("test_ood"),
        blosum_r=n.r,
        blosum_p=n.p,
        control_r=n.control_r,
        beats_control=n.beats_control,
        status="ok",
    )
    return row


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    passed: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, passed = argv[:i], argv[i + 1 :]
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default=str(REPO / "outputs" / "demo_seeds"))
    p.add_argument("--test-ood", default=str(TEST_OOD), help="a held-out FASTA scored beside valid")
    p.add_argument(
        "--no-test-ood", action="store_true", help="do not score ../shared's test_ood split"
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = []
    if not args.no_test_ood and Path(args.test_ood).is_file():
        # its first 1,000 proteins (as many as valid): the minutes include this extra scoring
        extra = ["--extra-eval", str(args.test_ood), "--eval", "max_proteins=1000"]
    rows = []
    for seed in args.seeds:
        demo_dir = out / f"seed{seed}"
        cmd = [
            sys.executable,
            str(REPO / "scripts" / "demo.py"),
            "--seed",
            str(seed),
            "--out",
            str(demo_dir),
            *extra,
            *passed,
        ]
        print(f"\n##### seed {seed}: {' '.join(cmd)}", flush=True)
        subprocess.call(cmd, cwd=REPO, env=os.environ)
        rows.append(seed_row(seed, demo_dir))
        table = pd.DataFrame(rows)
        table.to_csv(out / "seeds.csv", index=False)
        (out / "seeds.md").write_text(table.to_markdown(index=False, floatfmt=".3f") + "\n")
    print(f"\n{(out / 'seeds.md').read_text()}\nwrote {out / 'seeds.csv'} and {out / 'seeds.md'}")


if __name__ == "__main__":
    main()
