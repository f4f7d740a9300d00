"""What datasets read proteins from: an indexable collection of token arrays."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ProteinSource(Protocol):
    """Proteins as uint8 token arrays (residue tokens only, no special tokens).

    Implemented in memory (from FASTA, :mod:`protein_performer.data.fasta.reading`) and on disk
    (the prepared memmap store, :mod:`protein_performer.data.storage.store`).
    """

    @property
    def lengths(self) -> np.ndarray:
        """int64 [N]: residues per protein."""
        ...

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> np.ndarray:
        """uint8 tokens of protein i."""
        ...

    def accession(self, i: int) -> str: ...


class InMemoryProteins:
    """A ProteinSource over one flat token array and offsets (same layout as the store)."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, accessions: list[str]) -> None:
        if len(offsets) != len(accessions) + 1:
            raise ValueError("offsets must have one more entry than accessions")
        self.tokens = tokens
        self.offsets = offsets.astype(np.int64)
        self.accessions = accessions

    @classmethod
    def from_arrays(cls, arrays: list[np.ndarray], accessions: list[str]) -> InMemoryProteins:
        lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.concatenate(arrays).astype(np.uint8) if arrays else np.zeros(0, np.uint8)
        return cls(flat, offsets, list(accessions))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.accessions)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def accession(self, i: int) -> str:
        return self.accessions[i]
