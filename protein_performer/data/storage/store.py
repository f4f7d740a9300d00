"""The prepared token store: a FASTA corpus as memory-mapped numpy arrays on disk.

Layout of a store directory (format version 1)::

    manifest.json            counts, alphabet, residue counts, sources, options (written last:
                             its presence marks a complete store)
    tokens.npy               uint8 [T]    residue tokens of all proteins, concatenated
    offsets.npy              int64 [N+1]  protein i is tokens[offsets[i]:offsets[i+1]]
    lengths.npy              int64 [N]    residues per protein
    accessions.txt           N lines, one accession each
    accession_offsets.npy    int64 [N+1]  byte offsets of the lines in accessions.txt

:func:`~protein_performer.data.storage.prepare.prepare_store` writes it;
:class:`ProteinStore` opens it read-only (memory-mapped).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from protein_performer.data.fasta.options import DEFAULT_READ, ReadOptions
from protein_performer.data.fasta.reading import load_proteins
from protein_performer.data.fasta.report import PathLike
from protein_performer.data.source import InMemoryProteins, ProteinSource
from protein_performer.data.storage.manifest import check_manifest
from protein_performer.errors import InputError, MissingInputError

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


def _prepare_hint(path: Path) -> str:
    return f" (run `protein-performer-data prepare INPUT.fasta.gz --out {path}` to create it)"


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


def open_source(path: PathLike, options: ReadOptions = DEFAULT_READ) -> ProteinSource:
    """A prepared store directory as a :class:`ProteinStore`, a FASTA file as
    :class:`InMemoryProteins` (read with ``options``).

    The reading options apply to FASTA only: a store was filtered when it was prepared.
    """
    p = Path(path)
    if p.is_dir():
        return ProteinStore(p)
    if not p.exists():
        raise MissingInputError(f"{p}: no such FASTA file or store directory")
    source: InMemoryProteins
    source, _ = load_proteins([p], options)
    return source
