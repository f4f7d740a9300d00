"""Benchmark `protein-performer-data prepare` against the hardware baselines.

    python scripts/bench_prepare.py [FASTA.gz] [--repeats 3] [--baselines]

Runs the CLI in a subprocess (wall time and peak RSS of the child via getrusage), writing the
store to a temporary directory that is deleted afterwards. With ``--baselines`` it also
times ``zcat | wc -c`` and Biopython's ``SimpleFastaParser`` over the same file (the
reference points of DESIGN.md). Default input: ``../shared/data/swissprot2014/train.fasta.gz``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "../shared/data/swissprot2014/train.fasta.gz"


def _child_run(cmd: list[str], **kw) -> tuple[float, float, str]:
    """(seconds, peak RSS of children so far in MiB, stdout) of one subprocess."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    return dt, rss, proc.stdout


def _biopython(path: Path) -> tuple[float, int]:
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    t0 = time.perf_counter()
    n = 0
    with gzip.open(path, "rt") as h:
        for _title, _seq in SimpleFastaParser(h):
            n += 1
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fasta", nargs="?", default=str(DEFAULT))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baselines", action="store_true")
    ap.add_argument("--dedupe", action="store_true")
    args = ap.parse_args()
    path = Path(args.fasta)
    if not path.exists():
        sys.exit(f"{path}: not found (pass a FASTA file)")
    print(
        f"# {path.name}, {path.stat().st_size / 2**20:.1f} MiB, {platform.node()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    if args.baselines:
        t0 = time.perf_counter()
        subprocess.run(f"zcat '{path}' | wc -c", shell=True, check=True, capture_output=True)
        print(f"zcat | wc -c: {time.perf_counter() - t0:.2f} s")
        dt, n = _biopython(path)
        print(f"Biopython SimpleFastaParser (gzip, text mode): {dt:.2f} s for {n:,} records")
    times = []
    rss = 0.0
    for _ in range(args.repeats):
        out = Path(tempfile.mkdtemp(prefix="pp_prepare_bench_")) / "store"
        try:
            cmd = [
                sys.executable,
                "-m",
                "protein_performer.cli.data",
                "-q",
                "prepare",
                str(path),
                "--out",
                str(out),
            ] + (["--dedupe"] if args.dedupe else [])
            dt, rss, stdout = _child_run(cmd, cwd=REPO)
            times.append(dt)
        finally:
            shutil.rmtree(out.parent, ignore_errors=True)
    print(stdout.strip())
    print(
        f"prepare: min {min(times):.2f} s, median {statistics.median(times):.2f} s over "
        f"{len(times)} runs; peak RSS {rss:.0f} MiB; load average now "
        f"{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
