"""Streaming shards: a corpus as WebDataset tar files, readable from a directory or a URL.

Layout of a shard set (format version 1)::

    shard-000000.tar ...   WebDataset tar shards (~``shard_bytes`` each); every sample is a
                           *block* of up to ``block_proteins`` consecutive proteins:
                             <key>.tok  uint8 residue tokens of the block, concatenated
                             <key>.off  little-endian int64 [n + 1] offsets into .tok
                             <key>.acc  n accessions, one per line
                           <key> is the block's first protein index, 9+ digits
    shards.json            counts, alphabet, residue counts, block size, and per shard its
                           name, proteins, residues and bytes (written last: its presence
                           marks a complete set)

Blocks, not one sample per protein: a tar member costs >= 1 KiB (header + padding) and
per-sample decoding dominates for ~350-residue proteins; per-protein samples made the set
12x larger and 200x slower to read than blocks of 1024 (``scripts/bench_streaming.py``).

Locations: a local directory, ``file://``, or a URL. ``http(s)://``, ``gs://``, ``hf://``,
``pipe:`` go through :func:`webdataset.gopen`; other schemes (``s3://``, ``az://``, ...)
through fsspec when its backend is installed (``pip install s3fs`` for S3).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Sequence
from urllib.parse import urlparse

import numpy as np

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.fasta.accessions import accession_bytes
from protein_performer.data.fasta.report import PathLike, ReadReport
from protein_performer.data.fasta.options import DEFAULT_READ, ReadOptions
from protein_performer.errors import InputError
from protein_performer.progress import Progress
from protein_performer.data.fasta.reading import iter_filtered_blocks
from protein_performer.data.storage.store import (
    ProteinStore,
    check_manifest,
    count_tokens,
    is_store,
)

FORMAT = "protein-performer-shards"
VERSION = 1
MANIFEST = "shards.json"
SHARD_PATTERN = "shard-{:06d}.tar"
SHARD_BYTES = 64 * 10**6
BLOCK_PROTEINS = 1024


class ShardError(InputError):
    """A location that is not a (complete, compatible) shard set."""


def _hint(where: str) -> str:
    return (
        f" (run `protein-performer-data stream-prepare INPUT --out DIR` to write one, "
        f"then copy DIR to {where})"
    )


# -- locations ----------------------------------------------------------------------------


def is_url(location: str | os.PathLike) -> bool:
    """True for ``scheme://...`` and ``pipe:`` locations other than ``file://``."""
    s = str(location)
    if s.startswith("pipe:"):
        return True
    scheme = urlparse(s).scheme
    return len(scheme) > 1 and scheme != "file" and "://" in s


def is_shard_set(location: str | os.PathLike) -> bool:
    """True for a URL, or a local directory holding a shard manifest."""
    if is_url(location):
        return True
    p = _local(str(location))
    return p.is_dir() and (p / MANIFEST).is_file()


def _local(location: str) -> Path:
    return Path(urlparse(location).path) if location.startswith("file://") else Path(location)


def join(location: str, name: str) -> str:
    """``location/name`` for directories and URLs alike."""
    return location.rstrip("/") + "/" + name if is_url(location) else str(_local(location) / name)


def open_binary(location: str) -> IO[bytes]:
    """A readable binary stream of a local file or URL (see the module docstring)."""
    if not is_url(location):
        return open(_local(location), "rb")
    import webdataset as wds

    scheme = "pipe" if location.startswith("pipe:") else urlparse(location).scheme
    if scheme in wds.gopen_schemes:
        return wds.gopen(location, "rb")
    try:
        import fsspec

        return fsspec.open(location, "rb").open()
    except (ImportError, ValueError) as exc:
        raise ShardError(
            f"{location}: cannot open {scheme}:// ({exc}); install the fsspec "
            f"backend for it (s3fs for s3://, gcsfs for gs://, adlfs for az://)"
        ) from exc


# -- writing ------------------------------------------------------------------------------


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


def _store_blocks(store: Any, block: int) -> Iterator[tuple[np.ndarray, np.ndarray, list[bytes]]]:
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
    """Regroup (tokens, lengths, accessions) chunks of any size into blocks of ``block`` proteins."""
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
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
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
                raise FileNotFoundError(f"{p}: no such FASTA file or store directory")
        report.read = ReadReport()
        chunks = _fasta_blocks(paths, report.read, options)
        counts = None
        total = 0
    out = Path(out_dir)
    _claim(out, overwrite)
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
        tmp = out / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(tmp, out / MANIFEST)
    except BaseException:
        bar.close()
        if writer is not None:
            writer.close()
        for sh in shards:
            (out / sh["name"]).unlink(missing_ok=True)
        (out / (MANIFEST + ".tmp")).unlink(missing_ok=True)
        raise
    return report


def _claim(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a directory (choose another --out)")
    out.mkdir(parents=True, exist_ok=True)
    entries = list(out.iterdir())
    if not entries:
        return
    ours = [p for p in entries if p.name in (MANIFEST, MANIFEST + ".tmp") or _is_shard(p)]
    if len(ours) == len(entries) and not (out / MANIFEST).exists():
        # the shards of a stream-prepare killed before it wrote its manifest (written last)
        if not overwrite:
            raise FileExistsError(
                f"{out}: holds a partial shard set (no {MANIFEST}: an interrupted "
                "stream-prepare); pass --overwrite to replace it, or choose another --out"
            )
        for p in entries:
            p.unlink()
        return
    if (out / MANIFEST).exists() and overwrite:
        for p in entries:
            if p.name == MANIFEST or _is_shard(p):
                p.unlink()
        return
    if (out / MANIFEST).exists():
        raise FileExistsError(
            f"{out}: a shard set already exists (pass --overwrite to replace "
            "it, or choose another --out)"
        )
    raise FileExistsError(f"{out}: directory exists and is not empty (choose another --out)")


def _is_shard(p: Path) -> bool:
    return p.name.startswith("shard-") and p.suffix == ".tar"


# -- reading ------------------------------------------------------------------------------


def _tokens_only(name: str) -> bool:
    # training needs tokens only: the .acc member is skipped unread
    return not name.endswith(".acc")


class ShardSet:
    """A shard set's manifest, and its proteins streamed by position.

    Positions follow a *shard order* (a permutation of the shards, default the stored order):
    position p is the p-th protein when the shards are read in that order. Pickles by
    location and manifest (workers reopen shards themselves).
    """

    def __init__(self, location: str | os.PathLike) -> None:
        self.location = str(location)
        where = self.location
        try:
            with open_binary(join(where, MANIFEST)) as f:
                raw = f.read()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ShardError(f"{where}: not a shard set (no {MANIFEST})" + _hint(where)) from exc
        try:
            m = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ShardError(f"{join(where, MANIFEST)}: unreadable manifest ({exc})") from exc

        check_manifest(m, FORMAT, VERSION, where, _hint(where), ShardError)
        self.manifest: dict[str, Any] = m
        self.names = [s["name"] for s in m["shards"]]
        self.shard_proteins = np.asarray([s["proteins"] for s in m["shards"]], np.int64)
        self.residue_counts = np.asarray(m["residue_counts"], np.int64)

    def __len__(self) -> int:
        return int(self.manifest["n_proteins"])

    def __repr__(self) -> str:
        return f"ShardSet({self.location!r}, proteins={len(self)}, shards={len(self.names)})"

    def _blocks(self, shard: int) -> Iterator[tuple[int, bytes, bytes]]:
        """(first protein index, tok bytes, off bytes) of each block of one shard, in order."""
        from webdataset.tariterators import group_by_keys, tar_file_expander

        url = join(self.location, self.names[shard])
        with open_binary(url) as stream:
            members = tar_file_expander(
                [{"url": url, "stream": stream}], eof_value=None, select_files=_tokens_only
            )
            for sample in group_by_keys(members):
                try:
                    yield int(sample["__key__"]), sample["tok"], sample["off"]
                except (KeyError, ValueError) as exc:
                    raise ShardError(
                        f"{url}: damaged block {sample.get('__key__')!r} ({exc}; "
                        "write the shard set again)"
                    ) from exc

    def iter_range(
        self, start: int, stop: int | None, order: np.ndarray | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(protein index, uint8 tokens) at positions ``[start, stop)`` of the shard order.

        Reads only the shards the range touches; a shard entered mid-way is read (not
        decoded) from its start, since a tar stream cannot seek.
        """
        order = np.arange(len(self.names)) if order is None else np.asarray(order)
        stop = len(self) if stop is None else int(stop)
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"range [{start}, {stop}) outside [0, {len(self)}]")
        counts = self.shard_proteins[order]
        firsts = np.concatenate([[0], np.cumsum(counts)])  # position of each ordered shard
        k = int(np.searchsorted(firsts, start, side="right")) - 1
        while start < stop and k < len(order):
            shard = int(order[k])
            lo, hi = start - int(firsts[k]), min(stop, int(firsts[k + 1])) - int(firsts[k])
            seen = 0
            for first, tok, off in self._blocks(shard):
                offsets = np.frombuffer(off, "<i8")
                n = len(offsets) - 1
                if seen + n > lo:
                    tokens = np.frombuffer(tok, np.uint8)
                    for j in range(max(lo - seen, 0), min(n, hi - seen)):
                        yield first + j, tokens[offsets[j] : offsets[j + 1]]
                seen += n
                if seen >= hi:
                    break
            if seen < hi:
                raise ShardError(
                    f"{join(self.location, self.names[shard])}: {seen} proteins, "
                    f"the manifest says {int(self.shard_proteins[shard])} (a "
                    "truncated copy? copy the shard set again)"
                )
            start = int(firsts[k + 1])
            k += 1
