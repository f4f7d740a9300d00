"""The one opener of proteins a user gives: a FASTA file (plain or gzip) or a prepared store."""

from __future__ import annotations

from pathlib import Path

from protein_performer.data.source import ProteinSource
from protein_performer.data.storage.store import open_source
from protein_performer.errors import InputError


class InputFileError(InputError):
    """An input path that does not exist or holds no proteins."""


def open_input(path: str | Path) -> ProteinSource:
    """The proteins of ``path`` (>= 1). A missing path or an empty file raises
    :class:`InputFileError`; malformed FASTA or a damaged store the reader's own
    :class:`~protein_performer.errors.InputError` (naming the file, record and line)."""
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"input not found: {p} (give a FASTA file or a prepared store)")
    source = open_source(p)
    if len(source) == 0:
        raise InputFileError(f"{p} holds no proteins")
    return source


def file_labels(paths: list[str | Path] | tuple[str | Path, ...]) -> list[str]:
    """Short unique labels for input files: the file name, or more of the path on clashes."""
    names = [Path(p).name for p in paths]
    return [n if names.count(n) == 1 else str(Path(p)) for n, p in zip(names, paths)]
