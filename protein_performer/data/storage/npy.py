"""A 1-D ``.npy`` file grown by appending blocks, with bounded memory (the store's arrays)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from protein_performer.data.fasta.report import PathLike


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
