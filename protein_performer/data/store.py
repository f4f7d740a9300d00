"""The prepared token store: a FASTA corpus as memory-mapped numpy arrays on disk.

Layout of a store directory (format version 1)::

    manifest.json            counts, alphabet, residue counts, sources, options (written last:
                             its presence marks a complete store)
    tokens.npy               uint8 [T]    residue tokens of all proteins, concatenated
    offsets.npy              int64 [N+1]  protein i is tokens[offsets[i]:offsets[i+1]]
    lengths.npy              int64 [N]    residues per protein
    accessions.txt           N lines, one accession each
    accession_offsets.npy    int64 [N+1]  byte offsets of the lines in accessions.txt

:func:`prepare_store` writes it in one streaming pass with bounded memory: each ``.npy``
grows by appending blocks behind a header whose shape is rewritten at the end, so nothing
proportional to the corpus is held in RAM (except, with ``dedupe``, 8 bytes per distinct
protein: see :class:`~protein_performer.data.digest_set.DigestSet`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from protein_performer.data.accessions import accession_bytes
from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.fasta import iter_filtered_blocks, load_proteins
from protein_performer.data.fasta_blocks import BLOCK_SIZE
from protein_performer.data.fasta_report import OnInvalid, PathLike, ReadReport
from protein_performer.data.source import InMemoryProteins, ProteinSource
from protein_performer.errors import InputError
from protein_performer.progress import Progress

FORMAT = "protein-performer-store"
VERSION = 1
MANIFEST = "manifest.json"
FILES = {
    "tokens": "tokens.npy",
    "offsets": "offsets.npy",
    "lengths": "lengths.npy",
    "accessions": "accessions.txt",
    "accession_offsets": "accession_offsets.npy",
}


class StoreError(InputError):
    """A directory that is not a (complete, compatible) prepared store."""


def check_manifest(
    m: dict, fmt: str, version: int, where: str, hint: str, error: type[ValueError]
) -> None:
    """Raise ``error`` unless manifest ``m`` has this format, version and alphabet."""
    if m.get("format") != fmt or m.get("version") != version:
        raise error(
            f"{where}: format {m.get('format')!r} version {m.get('version')!r}, this "
            f"code reads {fmt!r} version {version}" + hint
        )
    if m.get("alphabet") != list(ALPHABET.tokens):
        raise error(f"{where}: built with a different alphabet than this code's" + hint)


def _prepare_hint(path: Path) -> str:
    return f" (run `protein-performer-data prepare INPUT.fasta.gz --out {path}` to create it)"


# -- writing ------------------------------------------------------------------------------


class NpyAppender:
    """A 1-D ``.npy`` file grown by appending; the header's shape is fixed up on close.

    numpy pads ``.npy`` headers so that the length of a growing axis can be rewritten in
    place, so the header written for shape ``(0,)`` has the same size as the final one.
    """

    def __init__(self, path: PathLike, dtype: np.dtype | type) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.n = 0
        self._f = open(self.path, "wb")
        self._header()
        self._data_start = self._f.tell()

    def _header(self) -> None:
        np.lib.format.write_array_header_1_0(
            self._f,
            {
                "descr": np.lib.format.dtype_to_descr(self.dtype),
                "fortran_order": False,
                "shape": (self.n,),
            },
        )

    def append(self, values: np.ndarray) -> None:
        arr = np.ascontiguousarray(values, dtype=self.dtype)
        self._f.write(memoryview(arr).cast("B"))
        self.n += arr.size

    def close(self) -> None:
        if self._f.closed:
            return
        self._f.seek(0)
        self._header()
        if self._f.tell() != self._data_start:  # pragma: no cover - numpy format change
            raise RuntimeError(f"{self.path}: .npy header changed size on rewrite")
        self._f.close()


def count_tokens(tokens: np.ndarray) -> np.ndarray:
    """int64 [len(ALPHABET)]: occurrences of each token in a uint8 array.

    ``np.bincount`` widens every byte to int64 first; counting byte *pairs* (a uint16 view)
    halves that work and the pair table (65536 bins) is tiny -- about 2x faster here.
    """
    tokens = np.ascontiguousarray(tokens, dtype=np.uint8)
    n = len(tokens) & ~1
    pairs = np.bincount(tokens[:n].view(np.uint16), minlength=1 << 16).reshape(256, 256)
    counts = pairs.sum(axis=0) + pairs.sum(axis=1)
    if n < len(tokens):
        counts[tokens[-1]] += 1
    return counts[: len(ALPHABET)].astype(np.int64)


@dataclass
class PrepareReport:
    """What :func:`prepare_store` wrote and what the reader left out."""

    out_dir: str
    read: ReadReport
    seconds: float = 0.0
    bytes_written: int = 0
    dedupe_bytes: int = 0  # memory held by the duplicate detector at the end
    residue_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHABET), np.int64))

    @property
    def proteins(self) -> int:
        return self.read.proteins

    @property
    def residues(self) -> int:
        return self.read.residues

    def summary(self) -> str:
        text = (
            f"prepared {self.out_dir}: {self.read.summary()}; "
            f"{self.bytes_written / 2**20:,.1f} MiB written in {self.seconds:,.1f} s"
        )
        if self.dedupe_bytes:
            text += f"; dedupe digests {self.dedupe_bytes / 2**20:,.1f} MiB"
        return text

    def __str__(self) -> str:
        return self.summary()


def prepare_store(
    inputs: Sequence[PathLike] | PathLike,
    out_dir: PathLike,
    *,
    min_length: int = 1,
    max_length: int | None = None,
    dedupe: bool = False,
    on_invalid: OnInvalid = "error",
    remove_gaps: bool = False,
    progress: bool = True,
    overwrite: bool = False,
    block_size: int = BLOCK_SIZE,
) -> PrepareReport:
    """Convert FASTA files (plain or gzip) into a token store at ``out_dir``, streaming.

    Memory stays bounded by a few decompressed blocks (16 MiB each), plus 8 bytes per
    distinct protein with ``dedupe``. On any error the partial files are removed. An
    existing store is replaced only with ``overwrite``; any other non-empty directory is
    refused.
    """
    t0 = time.perf_counter()
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    if not paths:
        raise ValueError("prepare_store needs at least one input FASTA file")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such FASTA file")
    out = Path(out_dir)
    created_dir = _claim_out_dir(out, overwrite)
    report = PrepareReport(str(out), ReadReport())
    sizes = [p.stat().st_size for p in paths]
    bar = Progress(sum(sizes), f"prepare {out.name}", enabled=progress)
    written: list[Path] = []
    try:
        w = {
            k: NpyAppender(out / FILES[k], dt)
            for k, dt in [
                ("tokens", np.uint8),
                ("offsets", np.int64),
                ("lengths", np.int64),
                ("accession_offsets", np.int64),
            ]
        }
        written += [a.path for a in w.values()]
        acc_path = out / FILES["accessions"]
        written.append(acc_path)
        counts = np.zeros(len(ALPHABET), dtype=np.int64)
        n_tok = 0
        n_acc = 0
        w["offsets"].append(np.zeros(1, np.int64))
        w["accession_offsets"].append(np.zeros(1, np.int64))
        file_base = {str(p): sum(sizes[:i]) for i, p in reversed(list(enumerate(paths)))}
        with open(acc_path, "wb") as acc_file:
            for block in iter_filtered_blocks(
                paths,
                report.read,
                min_length=min_length,
                max_length=max_length,
                dedupe=dedupe,
                on_invalid=on_invalid,
                remove_gaps=remove_gaps,
                block_size=block_size,
            ):
                lengths = block.lengths
                w["tokens"].append(block.tokens)
                w["lengths"].append(lengths)
                w["offsets"].append(n_tok + np.cumsum(lengths))
                n_tok += int(lengths.sum())
                counts += count_tokens(block.tokens)
                accs = [accession_bytes(h) for h in block.headers]
                if accs:
                    acc_file.write(b"\n".join(accs) + b"\n")
                    acc_lens = np.fromiter(map(len, accs), np.int64, len(accs)) + 1
                    w["accession_offsets"].append(n_acc + np.cumsum(acc_lens))
                    n_acc += int(acc_lens.sum())
                bar.update_to(
                    file_base[block.path] + block.raw_end, f"{report.read.proteins:,} proteins"
                )
        for a in w.values():
            a.close()
        if report.read.proteins == 0:
            raise StoreError(
                f"{out}: no proteins to store from {[str(p) for p in paths]} "
                f"({report.read.summary()}): give files that hold proteins, or loosen "
                f"--min-length/--max-length (--on-invalid error shows the first bad record)"
            )
        bar.update_to(sum(sizes))
        bar.close()
        report.residue_counts = counts
        report.seconds = time.perf_counter() - t0
        report.bytes_written = sum(p.stat().st_size for p in written)
        report.dedupe_bytes = report.read.dedupe_bytes
        manifest = _manifest(
            report,
            paths,
            sizes,
            dict(
                min_length=min_length,
                max_length=max_length,
                dedupe=dedupe,
                on_invalid=on_invalid,
                remove_gaps=remove_gaps,
            ),
        )
        tmp = out / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(tmp, out / MANIFEST)
    except BaseException:
        bar.close()
        for a in locals().get("w", {}).values():
            a._f.close()
        for p in written + [out / (MANIFEST + ".tmp")]:
            p.unlink(missing_ok=True)
        if created_dir:
            try:
                out.rmdir()
            except OSError:
                pass
        raise
    return report


def _claim_out_dir(out: Path, overwrite: bool) -> bool:
    """Make sure ``out`` can take a store; returns True when this call created it."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a directory (choose another --out)")
    if not out.exists():
        out.mkdir(parents=True)
        return True
    entries = list(out.iterdir())
    if not entries:
        return False
    # the files of a prepare killed before it wrote its manifest (which is written last)
    partial = {p.name for p in entries} <= set(FILES.values()) | {MANIFEST + ".tmp"}
    if partial and not (out / MANIFEST).exists():
        if not overwrite:
            raise FileExistsError(
                f"{out}: holds a partial store (no {MANIFEST}: an interrupted prepare); pass "
                "--overwrite (overwrite=True) to replace it, or choose another --out"
            )
        for p in entries:
            p.unlink()
        return False
    if (out / MANIFEST).exists():
        if not overwrite:
            raise FileExistsError(
                f"{out}: a prepared store already exists (pass overwrite=True / --overwrite "
                "to replace it, or choose another --out)"
            )
        for name in list(FILES.values()) + [MANIFEST]:
            (out / name).unlink(missing_ok=True)
        return False
    raise FileExistsError(f"{out}: directory exists and is not empty (choose another --out)")


def _manifest(report: PrepareReport, paths: list[Path], sizes: list[int], options: dict) -> dict:
    r = report.read
    return {
        "format": FORMAT,
        "version": VERSION,
        "n_proteins": r.proteins,
        "n_residues": r.residues,
        "alphabet": list(ALPHABET.tokens),
        "residue_counts": [int(c) for c in report.residue_counts],
        "files": FILES,
        "sources": [{"path": str(p), "bytes": s} for p, s in zip(paths, sizes)],
        "options": options,
        "read": {
            "records": r.records,
            "skipped": r.skipped,
            "too_short": r.too_short,
            "too_long": r.too_long,
            "duplicates": r.duplicates,
            "examples": r.examples,
        },
        "seconds": round(report.seconds, 3),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# -- reading ------------------------------------------------------------------------------


def is_store(path: PathLike) -> bool:
    """True when ``path`` is a directory holding a store manifest."""
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).is_file()


def _load(path: Path, n: int, dtype: np.dtype | type) -> np.ndarray:
    arr = np.load(path, mmap_mode="r") if n else np.load(path)
    if arr.dtype != np.dtype(dtype) or arr.ndim != 1 or len(arr) != n:
        raise StoreError(
            f"{path}: expected {n} values of {np.dtype(dtype)}, found "
            f"{arr.shape} {arr.dtype} (a damaged store? prepare it again)"
        )
    # A plain ndarray view of the map: slicing stays cheap and results are ndarrays.
    return np.asarray(arr)


class ProteinStore:
    """A prepared store opened read-only as a :class:`ProteinSource` (memory-mapped).

    Pickles by path (DataLoader workers reopen the maps instead of copying the arrays).
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self._open()

    def _open(self) -> None:
        p = self.path
        if not p.exists():
            raise StoreError(f"{p}: no such store directory" + _prepare_hint(p))
        if not p.is_dir():
            raise StoreError(
                f"{p}: not a store directory (a FASTA file? read it with "
                "fasta.load_proteins or store.open_source)" + _prepare_hint(p)
            )
        mpath = p / MANIFEST
        if not mpath.is_file():
            raise StoreError(
                f"{p}: not a prepared store (no {MANIFEST}; an interrupted "
                "prepare leaves none)" + _prepare_hint(p)
            )
        try:
            m = json.loads(mpath.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{mpath}: unreadable manifest ({exc})" + _prepare_hint(p)) from exc
        check_manifest(m, FORMAT, VERSION, str(p), _prepare_hint(p), StoreError)
        self.manifest: dict[str, Any] = m
        n, t = int(m["n_proteins"]), int(m["n_residues"])
        try:
            self.tokens = _load(p / FILES["tokens"], t, np.uint8)
            self.offsets = _load(p / FILES["offsets"], n + 1, np.int64)
            self._lengths = _load(p / FILES["lengths"], n, np.int64)
            self._acc_offsets = _load(p / FILES["accession_offsets"], n + 1, np.int64)
            acc = p / FILES["accessions"]
            size = acc.stat().st_size
            self._acc = np.memmap(acc, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
        except FileNotFoundError as exc:
            raise StoreError(f"{p}: missing {Path(exc.filename).name}" + _prepare_hint(p)) from exc
        self.residue_counts = np.asarray(m["residue_counts"], dtype=np.int64)

    def __getstate__(self) -> dict:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict) -> None:
        self.path = Path(state["path"])
        self._open()

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths

    def __len__(self) -> int:
        return len(self._lengths)

    def _index(self, i: int) -> int:
        n = len(self._lengths)
        j = int(i)
        if j < 0:
            j += n
        if not 0 <= j < n:
            raise IndexError(f"protein index {i} out of range for a store of {n}")
        return j

    def __getitem__(self, i: int) -> np.ndarray:
        j = self._index(i)
        return self.tokens[self.offsets[j] : self.offsets[j + 1]]

    def accession(self, i: int) -> str:
        j = self._index(i)
        raw = self._acc[self._acc_offsets[j] : self._acc_offsets[j + 1] - 1]
        return raw.tobytes().decode("utf-8", "replace")

    def __repr__(self) -> str:
        return (
            f"ProteinStore({str(self.path)!r}, proteins={len(self)}, residues={self.tokens.size})"
        )


def open_source(
    path: PathLike,
    *,
    min_length: int = 1,
    max_length: int | None = None,
    dedupe: bool = False,
    on_invalid: OnInvalid = "error",
    remove_gaps: bool = False,
) -> ProteinSource:
    """A prepared store directory as a :class:`ProteinStore`, a FASTA file as
    :class:`InMemoryProteins` (read with the given options).

    The reading options apply to FASTA only: a store was filtered when it was prepared.
    """
    p = Path(path)
    if p.is_dir():
        return ProteinStore(p)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such FASTA file or store directory")
    source: InMemoryProteins
    source, _ = load_proteins(
        [p],
        min_length=min_length,
        max_length=max_length,
        dedupe=dedupe,
        on_invalid=on_invalid,
        remove_gaps=remove_gaps,
    )
    return source
