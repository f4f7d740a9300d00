"""`make demo`'s benchmark stage: the Abeta42 variant-effect assay and one contact map.

    python -m protein_performer.study.demo_benchmarks OUT --ckpt CKPT [--data-dir data/benchmarks]

Fills ``--data-dir`` with ``protein-performer-data fetch-benchmarks`` (mavenn + dssp) unless
the files are already there, then, through the benchmarks' own code:

- the Abeta42 assay (Seuma et al. 2022, mavenn ``amyloid``): a seeded sample of variants scored
  by the model and by BLOSUM62 on the same rows, Spearman with a bootstrap CI
  (:func:`protein_performer.benchmarks.dms.run_dms`, files in ``OUT/dms/``);
- one contact map: the first held-out MDAnalysisTests chain (by name, the first the contacts
  task draws), predicted by the contacts task's L1 regression over the APC-corrected attention
  maps fitted on its 20 training chains (``--contacts regression``), or by the single
  APC-corrected head best on those chains (``--contacts head``, no regression);
  long-range precision at L/5 beside the chain's contact density.

Writes ``OUT/benchmarks.json`` (the numbers, or ``status: skipped`` and why) and
``OUT/contact_map.npz`` (predicted, true). A fetch that fails or does not finish in
``--fetch-timeout`` seconds (offline), or data the tasks reject, is one line and exit status
0: the demo goes on without these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from protein_performer.benchmarks import contacts as C
from protein_performer.benchmarks.dms import DmsOptions, run_dms
from protein_performer.benchmarks.structure_tasks import TRAIN_CHAINS, contact_chains
from protein_performer.benchmarks.structures import StructureError, load_chains
from protein_performer.benchmarks.task_types import ModelSpec, TaskInputs
from protein_performer.errors import InputError
from protein_performer.runner import Engine, load_model

ASSAY = "Abeta42_Seuma2022"
MAVENN_FILE = Path("mavenn") / "amyloid_data.csv.gz"
STRUCTURE_DIR = "dssp"
RECORD = "benchmarks.json"
CONTACT_MAP = "contact_map.npz"
LONG = "long"  # the contacts task's range |i - j| >= 24
K = "L/5"
# the fetch takes ~10-20 s online; offline, pip retries for minutes (192 s measured): stop it
FETCH_TIMEOUT_S = 60.0


class BenchmarkDataUnavailable(RuntimeError):
    """The benchmark data could not be fetched (the reason is the fetch's own line)."""


def data_present(data_dir: Path) -> bool:
    """The Abeta42 file and the DSSP structures are in ``data_dir`` (then nothing is fetched)."""
    dssp = data_dir / STRUCTURE_DIR
    return (data_dir / MAVENN_FILE).is_file() and dssp.is_dir() and any(dssp.glob("*.pdb.dssp"))


def fetch_command(data_dir: Path) -> list[str]:
    """``protein-performer-data fetch-benchmarks`` of the two sources the stage reads."""
    cmd = [sys.executable, "-m", "protein_performer.cli.data", "fetch-benchmarks"]
    return cmd + ["--out", str(data_dir), "--only", "mavenn", STRUCTURE_DIR]


def ensure_data(data_dir: Path, timeout_s: float = FETCH_TIMEOUT_S) -> str:
    """``data_dir`` ready to read: ``present``, or what fetch-benchmarks did (its own line);
    :class:`BenchmarkDataUnavailable` with the fetch's last line when it fails, or when it has
    not finished in ``timeout_s`` (offline, pip retries for minutes; it is stopped then)."""
    if data_present(data_dir):
        return "present"
    proc = subprocess.Popen(
        fetch_command(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: pip goes with it on a timeout
    )
    try:
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BenchmarkDataUnavailable(
            f"fetch-benchmarks did not finish in {timeout_s:g} s (offline or a slow network?)"
        ) from None
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    if proc.returncode != 0 or not data_present(data_dir):
        raise BenchmarkDataUnavailable(lines[-1] if lines else f"exit status {proc.returncode}")
    return lines[-1] if lines else "fetched"


def abeta42(ckpt: Path, data_dir: Path, out: Path, max_variants: int | None, seed: int = 0):
    """Spearman [CI] of the model and of BLOSUM62 on the same (seeded) Abeta42 rows."""

    inputs = TaskInputs(
        [ModelSpec("demo", ckpt)], data_dir, out, device="auto", progress=sys.stderr.isatty()
    )
    opts = DmsOptions([ASSAY], max_variants, seed, baselines=["blosum62"])
    summary = run_dms(inputs, opts)
    rows = summary[summary["variants"] == "all"].set_index("predictor")

    def spearman(predictor: str) -> dict[str, float]:
        r = rows.loc[predictor]
        return {k: float(r[k]) for k in ("spearman", "ci_low", "ci_high")}

    return {
        "assay": ASSAY,
        "n": int(rows.loc["model", "n"]),
        "max_variants": max_variants,
        "strategy": str(rows.loc["model", "strategy"]),
        "model": spearman("model"),
        "blosum62": spearman("blosum62"),
        "csv": str(out / "demo" / f"{ASSAY}.csv"),
    }


def held_out_names(data_dir: Path, train: list[str]) -> list[str]:
    """The DSSP chains of ``data_dir`` outside the contacts task's training chains, by name."""
    names = {
        f.name.removesuffix(".pdb.dssp") for f in (data_dir / STRUCTURE_DIR).glob("*.pdb.dssp")
    }
    return sorted(names - set(train))


def contact_map(ckpt: Path, data_dir: Path, out: Path, method: str, seed: int = 0):
    """One held-out chain's predicted map (``regression`` or best ``head``), its long-range
    P@L/5 and contact density; the maps go to ``out/contact_map.npz``."""

    train_names = list(TRAIN_CHAINS)
    test_names = held_out_names(data_dir, train_names)
    if not test_names:
        raise StructureError(f"{data_dir / STRUCTURE_DIR}: no chain outside the 20 training chains")
    loaded = load_model(ckpt)
    engine = Engine(loaded.model, "auto")
    t0 = time.perf_counter()
    train = contact_chains(engine, load_chains(data_dir / STRUCTURE_DIR, train_names))
    (chain,) = contact_chains(engine, load_chains(data_dir / STRUCTURE_DIR, test_names[:1]))
    t1 = time.perf_counter()
    if method == "regression":
        predicted = C.ContactRegression(C.DEFAULT_C, seed=seed).fit(train).predict(chain)
        how = f"L1 regression over {chain.features.shape[0]} APC attention maps"
    else:
        best = int(np.nanargmax(C.head_precisions(train, LONG, K)))
        n_heads = loaded.model_cfg.n_heads
        predicted = chain.features[best]
        how = f"APC attention of layer {best // n_heads} head {best % n_heads}"
    t2 = time.perf_counter()
    low, high = C.RANGES[LONG]
    length = chain.contacts.shape[0]
    np.savez_compressed(out / CONTACT_MAP, predicted=predicted, true=chain.contacts)
    return {
        "chain": chain.name,
        "length": int(length),
        "method": method,
        "predictor": f"{how}, fitted on {len(train)} training chains",
        "precision": C.precision_at(predicted, chain.contacts, low, high, C.FRACTIONS[K]),
        "density": C.contact_density(chain.contacts, low, high),
        "top_pairs": max(1, length // C.FRACTIONS[K]),
        "seconds_attention": t1 - t0,
        "seconds_predict": t2 - t1,
    }


def run_stage(
    out: Path,
    ckpt: Path,
    data_dir: Path,
    max_variants: int | None,
    contacts: str,
    fetch_timeout_s: float = FETCH_TIMEOUT_S,
) -> dict[str, Any]:
    """Fetch (or reuse), score, predict; the record written to ``out/benchmarks.json``."""

    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"data_dir": str(data_dir), "seconds": {}}
    t0 = time.perf_counter()
    try:
        record["data"] = ensure_data(data_dir, fetch_timeout_s)
        record["seconds"]["data"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        record["abeta42"] = abeta42(ckpt, data_dir, out / "dms", max_variants)
        record["seconds"]["abeta42"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        record["contacts"] = contact_map(ckpt, data_dir, out, contacts)
        record["seconds"]["contacts"] = time.perf_counter() - t2
        record["status"] = "done"
    except BenchmarkDataUnavailable as err:
        record.update(status="skipped", reason=f"benchmark data unavailable: {err}")
    except (InputError, FileNotFoundError, ValueError) as err:
        record.update(status="skipped", reason=f"{type(err).__name__}: {err}")
    record["seconds"]["total"] = time.perf_counter() - t0
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("out", help="output folder of the stage (e.g. outputs/demo/benchmarks)")
    p.add_argument("--ckpt", required=True, help="the demo's checkpoint")
    p.add_argument(
        "--data-dir",
        default="data/benchmarks",
        help="benchmark data folder (a cache; fetched when absent)",
    )
    p.add_argument(
        "--variants",
        type=int,
        default=2000,
        help="a seeded sample of the assay's 14,483 variants (0: all; default 2000)",
    )
    p.add_argument(
        "--contacts",
        choices=("regression", "head"),
        default="regression",
        help="the contact predictor: the task's regression, or its best single head",
    )
    p.add_argument(
        "--fetch-timeout",
        type=float,
        default=FETCH_TIMEOUT_S,
        metavar="S",
        help=f"give up fetching after S seconds (default {FETCH_TIMEOUT_S:g})",
    )
    args = p.parse_args(argv)
    if args.fetch_timeout <= 0:
        p.error(f"--fetch-timeout must be > 0, got {args.fetch_timeout}")
    if args.variants < 0:
        p.error(f"--variants must be >= 0, got {args.variants}")
    if not Path(args.ckpt).is_file():
        p.error(f"--ckpt: {args.ckpt} not found (did the training stage fail?)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    record = run_stage(
        Path(args.out),
        Path(args.ckpt),
        Path(args.data_dir),
        args.variants or None,
        args.contacts,
        args.fetch_timeout,
    )
    if record["status"] != "done":
        print(f"benchmarks skipped ({record['reason']}); the demo goes on without them", flush=True)
        return
    a, c = record["abeta42"], record["contacts"]
    print(
        f"{a['assay']} ({a['n']} variants): Spearman {a['model']['spearman']:.3f} vs BLOSUM62 "
        f"{a['blosum62']['spearman']:.3f}; contacts of {c['chain']}: long-range P@L/5 "
        f"{c['precision']:.3f} (density {c['density']:.3f})",
        flush=True,
    )


if __name__ == "__main__":
    main()
