"""Streaming formats for object storage: litdata vs WebDataset, measured on one corpus.

    python scripts/bench_streaming.py [FASTA ...] [--max-proteins N] [--out bench_results/streaming]

For each input (default: the embedded ``data/sample/train.fasta.gz`` and, when present,
``../shared/data/swissprot2014/train.fasta.gz``) it prepares a token store once (the common
source), then converts it to

* **litdata**: ``litdata.optimize`` (one worker: the machine has 2 shared cores), 64 MB chunks,
  one item ``{"index", "tokens"}`` per protein;
* **webdataset**: ``webdataset.ShardWriter``, 64 MB tar shards, one sample per protein
  (``tok``: the uint8 tokens, ``idx``: the index);
* **wds-blocks**: the same, but one sample per 1024 consecutive proteins (``tok``: their
  tokens, ``off``: int64 offsets), expanded to proteins by the reader;
* **ours**: ``protein-performer-data stream-prepare`` (the wds-blocks layout + a manifest),
  read raw and as training batches (shuffle buffer, crops to 1024 tokens, collate);

and reads every protein back once, single process, from a local directory that plays the
object store (litdata is skipped when not installed: it is not a project dependency). For
reference, a ``store`` row gives the same training batches from the memory-mapped store.
litdata reads it twice: directly (``input_dir=DIR``) and as a remote (``local:DIR``: chunks
are copied into a cache first, as from S3). Reported: conversion seconds, MiB on disk, read seconds
and residues (tokens) per second. Writes ``streaming.csv`` and prints a table. Figures depend on the
machine's load: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / "../shared/data/swissprot2014/train.fasta.gz"
SAMPLE = REPO / "data/sample/train.fasta.gz"
CHUNK = 64 * 10**6


def _du(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


class _Ranges:
    """litdata.optimize's fn: one (start, end) range of store indices -> one item per protein."""

    def __init__(self, store_dir: str) -> None:
        self.store_dir = store_dir
        self._store = None

    def __call__(self, bounds: tuple[int, int]):
        from protein_performer.data.storage.store import ProteinStore

        if self._store is None:
            self._store = ProteinStore(self.store_dir)
        for i in range(*bounds):
            yield {"index": i, "tokens": np.array(self._store[i])}


def litdata_write(store_dir: Path, out: Path, n: int) -> None:
    import litdata

    step = max(1, -(-n // 64))
    ranges = [(s, min(n, s + step)) for s in range(0, n, step)]
    litdata.optimize(
        fn=_Ranges(str(store_dir)),
        inputs=ranges,
        output_dir=str(out),
        chunk_bytes=CHUNK,
        num_workers=1,
        verbose=False,
        mode="overwrite",
    )


def litdata_read(url: str, cache: Path | None) -> tuple[int, int]:
    from litdata import StreamingDataset

    ds = StreamingDataset(url, cache_dir=str(cache) if cache else None)
    n = residues = 0
    for item in ds:
        residues += len(item["tokens"])
        n += 1
    return n, residues


def wds_write(store_dir: Path, out: Path, n: int) -> None:
    import webdataset as wds

    from protein_performer.data.storage.store import ProteinStore

    store = ProteinStore(store_dir)
    out.mkdir(parents=True)
    with wds.ShardWriter(
        str(out / "shard-%06d.tar"), maxsize=CHUNK, maxcount=10**9, verbose=0
    ) as sink:
        for i in range(n):
            sink.write({"__key__": f"{i:09d}", "tok": store[i].tobytes(), "idx": str(i)})


def wds_blocks_write(store_dir: Path, out: Path, n: int, block: int = 1024) -> None:
    import webdataset as wds

    from protein_performer.data.storage.store import ProteinStore

    store = ProteinStore(store_dir)
    out.mkdir(parents=True)
    with wds.ShardWriter(
        str(out / "shard-%06d.tar"), maxsize=CHUNK, maxcount=10**9, verbose=0
    ) as sink:
        for s in range(0, n, block):
            e = min(n, s + block)
            lo, hi = int(store.offsets[s]), int(store.offsets[e])
            sink.write(
                {
                    "__key__": f"{s:09d}",
                    "tok": store.tokens[lo:hi].tobytes(),
                    "off": (store.offsets[s : e + 1] - lo).astype("<i8").tobytes(),
                }
            )


def wds_blocks_read(out: Path) -> tuple[int, int]:
    import webdataset as wds

    urls = sorted(str(p) for p in out.glob("shard-*.tar"))
    n = residues = 0
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        tok = np.frombuffer(sample["tok"], np.uint8)
        off = np.frombuffer(sample["off"], "<i8")
        for i in range(len(off) - 1):
            residues += len(tok[off[i] : off[i + 1]])
            n += 1
    return n, residues


def wds_read(out: Path) -> tuple[int, int]:
    import webdataset as wds

    urls = sorted(str(p) for p in out.glob("shard-*.tar"))
    n = residues = 0
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        residues += len(np.frombuffer(sample["tok"], np.uint8))
        n += 1
    return n, residues


def ours_write(store_dir: Path, out: Path, n: int) -> None:
    from protein_performer.data.storage.shard_writer import write_shards

    write_shards(store_dir, out, shard_bytes=CHUNK, progress=False)


def ours_read(out: Path) -> tuple[int, int]:
    from protein_performer.data.storage.shards import ShardSet

    n = residues = 0
    for _index, tokens in ShardSet(str(out)).iter_range(0, None):
        residues += len(tokens)
        n += 1
    return n, residues


def ours_batches(out: Path, batch_size: int = 32, max_length: int = 1024) -> tuple[int, int]:
    """What training sees: shuffled, cropped, collated batches (tokens excl. <cls>/<eos>/pad)."""
    from protein_performer.data.storage.shards import ShardSet
    from protein_performer.data.storage.streaming import StreamingProteinDataset

    ds = StreamingProteinDataset(ShardSet(str(out)), max_length, batch_size, train=True)
    n = residues = 0
    for batch in ds.iter_worker(0, 1):
        n += len(batch["index"])
        residues += int(batch["mask"].sum()) - 2 * len(batch["index"])
    return n, residues


def store_batches(store_dir: Path, batch_size: int = 32, max_length: int = 1024) -> tuple[int, int]:
    """The same batches from the memory-mapped store (ProteinDataset + sampler + Collate)."""
    from protein_performer.data.datasets import ProteinDataset
    from protein_performer.data.sampling.collate import Collate
    from protein_performer.data.sampling.samplers import ShardedBatchSampler
    from protein_performer.data.storage.store import ProteinStore

    ds = ProteinDataset(ProteinStore(store_dir), max_length, train=True)
    collate = Collate()
    n = residues = 0
    for idx in ShardedBatchSampler(len(ds), batch_size):
        batch = collate([ds[i] for i in idx])
        n += len(idx)
        residues += int(batch["mask"].sum()) - 2 * len(idx)
    return n, residues


def _first_records(fasta: Path, n: int, out: Path) -> Path:
    """The first ``n`` records of a FASTA file as a plain FASTA file."""
    import gzip

    from Bio.SeqIO.FastaIO import SimpleFastaParser

    opener = gzip.open if fasta.suffix == ".gz" else open
    with opener(fasta, "rt") as src, open(out, "w") as dst:
        for k, (title, seq) in enumerate(SimpleFastaParser(src)):
            if k == n:
                break
            dst.write(f">{title}\n{seq}\n")
    return out


def bench(fasta: Path, max_proteins: int | None, work: Path) -> list[dict]:
    from protein_performer.data.storage.prepare import prepare_store
    from protein_performer.data.storage.store import ProteinStore

    store_dir = work / "store"
    source = (
        fasta if max_proteins is None else _first_records(fasta, max_proteins, work / "slice.fa")
    )
    prepare_store(source, store_dir, progress=False, overwrite=True)
    store = ProteinStore(store_dir)
    n = len(store)
    residues = int(store.offsets[n])
    name = f"{fasta.parent.name}/{fasta.name}" + ("" if max_proteins is None else f"[:{n}]")
    rows = []

    def row(
        lib: str,
        read: str,
        write_s: float,
        mib: float,
        read_s: float,
        got: tuple[int, int],
        expect: tuple[int, int] | None = None,
    ):
        expect = (n, residues) if expect is None else expect
        if got != expect:
            sys.exit(f"{lib}/{read}: read {got}, expected {expect} (proteins, residues)")
        tokens = expect[1]
        rows.append(
            dict(
                corpus=name,
                proteins=n,
                residues=residues,
                library=lib,
                read=read,
                write_s=round(write_s, 2),
                mib_on_disk=round(mib, 1),
                read_s=round(read_s, 2),
                mtokens_per_s=round(tokens / read_s / 1e6, 2),
            )
        )
        print(
            f"  {lib:10s} {read:24s} write {write_s:6.2f} s  {mib:7.1f} MiB  read {read_s:6.2f} s"
            f"  {tokens / read_s / 1e6:6.2f} M tokens/s",
            flush=True,
        )

    print(f"{name}: {n:,} proteins, {residues:,} residues (store {_du(store_dir):.1f} MiB)")
    cropped = int(np.minimum(np.diff(store.offsets), 1022).sum())  # crops to 1024 tokens
    t0 = time.perf_counter()
    got = store_batches(store_dir)
    row(
        "store",
        "memmap, crop, collate",
        0.0,
        _du(store_dir),
        time.perf_counter() - t0,
        got,
        expect=(n, cropped),
    )
    libs = [("webdataset", wds_write), ("wds-blocks", wds_blocks_write)]
    try:  # not a project dependency (see docs/benchmarks.md): measured when installed
        import litdata  # noqa: F401

        libs.insert(0, ("litdata", litdata_write))
    except ImportError:
        print("  litdata is not installed: skipped (pip install litdata; it pulls torchvision)")
    libs.append(("ours", ours_write))
    for lib, write in libs:
        out = work / lib
        t0 = time.perf_counter()
        write(store_dir, out, n)
        write_s = time.perf_counter() - t0
        mib = _du(out)
        if lib == "litdata":
            t0 = time.perf_counter()
            got = litdata_read(str(out), None)
            row(lib, "direct", write_s, mib, time.perf_counter() - t0, got)
            cache = work / "litdata_cache"
            t0 = time.perf_counter()
            got = litdata_read(f"local:{out}", cache)
            row(lib, "local: (cached copy)", write_s, mib, time.perf_counter() - t0, got)
            shutil.rmtree(cache, ignore_errors=True)
        elif lib in ("webdataset", "wds-blocks"):
            t0 = time.perf_counter()
            got = (wds_read if lib == "webdataset" else wds_blocks_read)(out)
            row(lib, "WebDataset pipeline", write_s, mib, time.perf_counter() - t0, got)
        else:
            t0 = time.perf_counter()
            got = ours_read(out)
            row(lib, "ShardSet.iter_range", write_s, mib, time.perf_counter() - t0, got)
            t0 = time.perf_counter()
            got = ours_batches(out)
            row(
                lib,
                "+shuffle, crop, collate",
                write_s,
                mib,
                time.perf_counter() - t0,
                got,
                expect=(n, cropped),
            )
        shutil.rmtree(out)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fasta", nargs="*", help="FASTA files (default: sample + shared train)")
    ap.add_argument(
        "--max-proteins",
        type=int,
        default=None,
        help="convert only the first N proteins of each corpus",
    )
    ap.add_argument("--out", default=str(REPO / "bench_results/streaming"))
    args = ap.parse_args()
    import torch

    # as in a DataLoader worker (and small ops on a busy machine would otherwise wait on
    # the thread pool: the first reader measured paid for it)
    torch.set_num_threads(1)
    inputs = [Path(p) for p in args.fasta] or [SAMPLE] + ([SHARED] if SHARED.exists() else [])
    print(
        f"# {platform.node()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    rows: list[dict] = []
    for fasta in inputs:
        if not fasta.exists():
            sys.exit(f"{fasta}: not found (pass a FASTA file)")
        work = Path(tempfile.mkdtemp(prefix="pp_stream_bench_"))
        try:
            rows += bench(fasta, args.max_proteins, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    import pandas as pd

    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "streaming.csv", index=False)
    print()
    print(table.to_markdown(index=False))
    print(f"\nwrote {out / 'streaming.csv'}")


if __name__ == "__main__":
    main()
