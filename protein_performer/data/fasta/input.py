"""A FASTA file opened for decompressed block reads, plain or gzip (detected by content)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import IO

from protein_performer.data.fasta.report import FastaFormatError, PathLike
from protein_performer.errors import MissingInputError

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: PathLike) -> bool:
    """True when the file starts with the gzip magic bytes (detected by content, not name)."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


class FastaInput:
    """A FASTA file opened for decompressed block reads; ``position`` counts raw bytes."""

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise MissingInputError(f"{self.path}: no such FASTA file")
        if self.path.is_dir():
            raise FastaFormatError(
                self.path,
                "is a directory, not a FASTA file",
                hint=" (a prepared store? open it with store.ProteinStore / open_source)",
            )
        self.size = self.path.stat().st_size
        self._raw = open(self.path, "rb")
        # Detect gzip by content, not by suffix: '.fa' files are sometimes gzipped and
        # '.gz' files sometimes are not.
        self.gzipped = self._raw.read(2) == GZIP_MAGIC
        self._raw.seek(0)
        self._stream: IO[bytes] = gzip.GzipFile(fileobj=self._raw) if self.gzipped else self._raw

    @property
    def position(self) -> int:
        return self._raw.tell()

    def read(self, n: int, line: int) -> bytes:
        if not self.gzipped:
            return self._stream.read(n)
        try:
            return self._stream.read(n)
        except (EOFError, zlib.error, OSError) as exc:  # BadGzipFile is an OSError
            problem = (
                "truncated gzip stream (the file ended before the end-of-stream marker; "
                "an interrupted download or copy?)"
                if isinstance(exc, EOFError)
                else f"corrupt gzip stream ({exc})"
            )
            raise FastaFormatError(self.path, problem, line=line) from exc

    def close(self) -> None:
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def __enter__(self) -> FastaInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
