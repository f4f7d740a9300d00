"""Writing a shard set (layout: :mod:`protein_performer.data.storage.shards`) from FASTA
files or a prepared store, streaming: memory stays bounded by a few blocks."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protein_performer.data.alphabet import ALPHABET, count_tokens
from protein_performer.data.fasta.accessions import accession_bytes
from protein_performer.data.fasta.options import DEFAULT_READ, ReadOptions
from protein_performer.data.fasta.reading import iter_filtered_blocks
from protein_performer.data.fasta.report import PathLike, ReadReport, as_paths
from protein_performer.data.storage.locations import ShardError
from protein_performer.data.storage.manifest import claim_out_dir, write_manifest
from protein_performer.data.storage.shards import (
    BLOCK_PROTEINS,
    FORMAT,
    MANIFEST,
    SHARD_BYTES,
    SHARD_PATTERN,
    VERSION,
)
from protein_performer.data.storage.store import ProteinStore, is_store
from protein_performer.errors import MissingInputError
from protein_performer.progress import Progress


@dataclass
class ShardReport:
    """What :func:`write_shards` wrote."""

    out_dir: str
    proteins: int = 0
    residues: int = 0
    shards: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    read: ReadReport | None = None

    def summary(self) -> str:
        text = (
            f"wrote {self.out_dir}: {self.proteins:,} proteins, {self.residues:,} residues "
            f"in {self.shards} shards, {self.bytes_written / 2**20:,.1f} MiB in "
            f"{self.seconds:,.1f} s"
        )
        if self.read is not None and self.read.skipped:
            text += f"; {self.read.summary()}"
        return text


def _store_blocks(
    store: ProteinStore, block: int
) -> Iterator[tuple[np.ndarray, np.ndarray, list[bytes]]]:
    """(tokens, lengths, accessions) of consecutive protein ranges of a prepared store."""
    n = len(store)
    for s in range(0, n, block):
        e = min(n, s + block)
        lo, hi = int(store.offsets[s]), int(store.offsets[e])
        yield (
            np.asarray(store.tokens[lo:hi]),
            np.diff(store.offsets[s : e + 1]),
            [store.accession(i).encode() for i in range(s, e)],
        )


def _fasta_blocks(paths: list[Path], report: ReadReport, options: ReadOptions) -> Iterator[tuple]:
    for b in iter_filtered_blocks(paths, report, options):
        yield b.tokens, b.lengths, [accession_bytes(h) for h in b.headers]


def _reblock(
    chunks: Iterator[tuple], block: int
) -> Iterator[tuple[np.ndarray, np.ndarray, list[bytes]]]:
    """Regroup (tokens, lengths, accessions) chunks of any size into blocks.

    Each block holds ``block`` proteins.
    """
    toks: list[np.ndarray] = []
    lens: list[np.ndarray] = []
    accs: list[bytes] = []
    n = 0
    for tokens, lengths, accessions in chunks:
        toks.append(np.asarray(tokens, np.uint8))
        lens.append(np.asarray(lengths, np.int64))
        accs.extend(accessions)
        n += len(accessions)
        if n < block:
            continue
        tokens, lengths = np.concatenate(toks), np.concatenate(lens)
        ends = np.cumsum(lengths)
        s = 0
        while n - s >= block:
            lo = int(ends[s - 1]) if s else 0
            hi = int(ends[s + block - 1])
            yield tokens[lo:hi], lengths[s : s + block], accs[s : s + block]
            s += block
        lo = int(ends[s - 1]) if s else 0
        toks, lens, accs, n = [tokens[lo:]], [lengths[s:]], accs[s:], n - s
    if n:
        yield np.concatenate(toks), np.concatenate(lens), accs


def write_shards(
    inputs: Sequence[PathLike] | PathLike,
    out_dir: PathLike,
    options: ReadOptions = DEFAULT_READ,
    *,
    shard_bytes: int = SHARD_BYTES,
    block_proteins: int = BLOCK_PROTEINS,
    overwrite: bool = False,
    progress: bool = True,
) -> ShardReport:
    """Write FASTA files (plain or gzip) or one prepared store directory as a shard set.

    Streams: memory stays bounded by a few blocks whatever the corpus size. Proteins keep
    their order (index i is the i-th protein of the input). The reading options apply to
    FASTA only (a store was filtered when it was prepared). Copy ``out_dir`` to object
    storage afterwards (``aws s3 sync DIR s3://bucket/prefix``).
    """
    import webdataset as wds

    if shard_bytes < 1 or block_proteins < 1:
        raise ValueError(
            f"shard_bytes and block_proteins must be >= 1, got {shard_bytes}, {block_proteins}"
        )
    t0 = time.perf_counter()
    paths = as_paths(inputs)
    if not paths:
        raise ValueError("write_shards needs a prepared store or at least one FASTA file")
    report = ShardReport(str(out_dir))
    if len(paths) == 1 and is_store(paths[0]):
        store = ProteinStore(paths[0])
        chunks: Iterator[tuple] = _store_blocks(store, block_proteins)
        counts = np.asarray(store.residue_counts, np.int64)
        total = len(store)
    else:
        for p in paths:
            if p.is_dir():
                raise ShardError(
                    f"{p}: not a prepared store (no manifest.json); give one store "
                    "directory or FASTA files"
                )
            if not p.is_file():
                raise MissingInputError(f"{p}: no such FASTA file or store directory")
        report.read = ReadReport()
        chunks = _fasta_blocks(paths, report.read, options)
        counts = None
        total = 0
    out = Path(out_dir)
    claim_out_dir(
        out,
        overwrite,
        manifest=MANIFEST,
        is_ours=_is_shard,
        kind="shard set",
        command="stream-prepare",
    )
    shards: list[dict] = []
    counted = np.zeros(len(ALPHABET), np.int64)
    bar = Progress(total or None, f"stream-prepare {out.name}", unit="protein", enabled=progress)
    writer = None
    try:
        for tokens, lengths, accs in _reblock(chunks, block_proteins):
            if writer is None or shards[-1]["bytes"] >= shard_bytes:
                if writer is not None:
                    writer.close()
                shards.append(
                    {
                        "name": SHARD_PATTERN.format(len(shards)),
                        "proteins": 0,
                        "residues": 0,
                        "bytes": 0,
                    }
                )
                writer = wds.TarWriter(str(out / shards[-1]["name"]))
            offsets = np.zeros(len(lengths) + 1, "<i8")
            np.cumsum(lengths, out=offsets[1:])
            writer.write(
                {
                    "__key__": f"{report.proteins:09d}",
                    "tok": tokens.tobytes(),
                    "off": offsets.tobytes(),
                    "acc": b"\n".join(accs),
                }
            )
            sh = shards[-1]
            sh["proteins"] += len(lengths)
            sh["residues"] += int(offsets[-1])
            # the tar's own size: a member is a 512-byte header + data padded to 512
            sh["bytes"] += sum(
                512 + -(-n // 512) * 512
                for n in (len(tokens), offsets.nbytes, sum(map(len, accs)) + len(accs))
            )
            report.proteins += len(lengths)
            report.residues += int(offsets[-1])
            if counts is None:
                counted += count_tokens(tokens)
            bar.update_to(report.proteins)
        if writer is not None:
            writer.close()
        if report.proteins == 0:
            raise ShardError(
                f"{out}: no proteins to write from {[str(p) for p in paths]}"
                + (f" ({report.read.summary()})" if report.read else "")
                + ": give inputs that hold proteins, or loosen --min-length/--max-length"
            )
        for sh in shards:
            sh["bytes"] = (out / sh["name"]).stat().st_size
        bar.close()
        report.shards = len(shards)
        report.bytes_written = sum(sh["bytes"] for sh in shards)
        report.seconds = time.perf_counter() - t0
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "n_proteins": report.proteins,
            "n_residues": report.residues,
            "alphabet": list(ALPHABET.tokens),
            "residue_counts": [int(c) for c in (counted if counts is None else counts)],
            "block_proteins": block_proteins,
            "shards": shards,
            "sources": [str(p) for p in paths],
        }
        write_manifest(out, MANIFEST, manifest)
    except BaseException:
        bar.close()
        if writer is not None:
            writer.close()
        for sh in shards:
            (out / sh["name"]).unlink(missing_ok=True)
        (out / (MANIFEST + ".tmp")).unlink(missing_ok=True)
        raise
    return report


def _is_shard(name: str) -> bool:
    return name.startswith("shard-") and name.endswith(".tar")
