"""How FASTA is read: one value instead of five keywords in every reader's signature."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from protein_performer.data.fasta.report import OnInvalid

ON_INVALID = ("error", "skip")


@dataclass(frozen=True)
class ReadOptions:
    """Options of the FASTA readers (``read_fasta``, ``load_proteins``, ``prepare_store``,
    ``write_shards``, the splits, ``corpus_stats``); validated at construction.

    Parsing: ``on_invalid`` "error" raises :class:`~protein_performer.data.fasta.report.
    FastaFormatError` on an invalid record, "skip" counts it in the ReadReport and leaves it
    out; ``remove_gaps`` deletes ``-``/``.`` instead of calling them invalid. Filters (records
    are dropped and counted): fewer than ``min_length`` or more than ``max_length`` residues,
    and with ``dedupe`` exact repeats of an earlier sequence (across all files of one read).
    """

    min_length: int = 1
    max_length: int | None = None
    dedupe: bool = False
    on_invalid: OnInvalid = "error"
    remove_gaps: bool = False

    def __post_init__(self) -> None:
        if self.on_invalid not in ON_INVALID:
            raise ValueError(f"on_invalid must be 'error' or 'skip', got {self.on_invalid!r}")
        if self.min_length < 1:
            raise ValueError(f"min_length must be >= 1, got {self.min_length}")
        if self.max_length is not None and self.max_length < self.min_length:
            raise ValueError(
                f"max_length must be >= min_length ({self.min_length}), got {self.max_length}"
            )

    @property
    def filters(self) -> bool:
        """True when records may be dropped by length or as duplicates."""
        return self.min_length > 1 or self.max_length is not None or self.dedupe

    def require_unfiltered(self, reader: str) -> None:
        """Raise unless the filters are off: ``reader`` keeps every valid record."""
        if self.filters:
            raise ValueError(
                f"{reader} keeps every valid record: min_length, max_length and dedupe do not "
                f"apply (got {self}); filter with load_proteins or prepare_store"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain values (a store's manifest)."""
        return dataclasses.asdict(self)


#: every valid record, invalid ones an error (the readers' default)
DEFAULT_READ = ReadOptions()
