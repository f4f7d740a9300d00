"""Writing FASTA: one record at a time, gzip when the name ends in ``.gz``."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO

import numpy as np

from protein_performer.data.alphabet import tokens_to_letters
from protein_performer.data.fasta.report import PathLike


def write_fasta(
    handle: IO[bytes], header: str | bytes, sequence: bytes | np.ndarray, width: int = 60
) -> None:
    """Write one record; ``sequence`` is letters (bytes) or residue tokens (uint8 array)."""
    letters = tokens_to_letters(sequence) if isinstance(sequence, np.ndarray) else sequence
    head = header.encode() if isinstance(header, str) else header
    lines = [b">" + head]
    lines.extend(letters[i : i + width] for i in range(0, len(letters), width))
    handle.write(b"\n".join(lines) + b"\n")


def open_output(path: PathLike, compresslevel: int = 3) -> IO[bytes]:
    """Open a FASTA file for writing: gzip when the name ends in ``.gz``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix == ".gz":
        return gzip.open(p, "wb", compresslevel=compresslevel)
    return open(p, "wb")
