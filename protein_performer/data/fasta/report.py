"""What reading FASTA can find wrong, and what it left out.

:class:`FastaFormatError` stops a read and names the file, record, line and problem; with
``on_invalid="skip"`` invalid records are instead counted by reason in a :class:`ReadReport`,
which also counts what the length filters and deduplication dropped.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from protein_performer.errors import InputError

OnInvalid = Literal["error", "skip"]
PathLike = str | os.PathLike


def as_paths(inputs: Sequence[PathLike] | PathLike) -> list[Path]:
    """One path or several, as a list of :class:`~pathlib.Path`."""
    if isinstance(inputs, (str, os.PathLike)):
        return [Path(inputs)]
    return [Path(p) for p in inputs]


# Records at least this long made only of nucleotide letters are reported (a protein of 20
# residues drawn from 6 of the 20 amino acids is vanishingly unlikely).
NUCLEOTIDE_MIN = 20

# Skip reasons (keys of ReadReport.skipped).
EMPTY = "empty sequence"
INVALID_CHAR = "invalid character"
GAP_CHAR = "gap character"
INNER_STOP = "stop '*' inside sequence"


class FastaFormatError(InputError):
    """Malformed FASTA input; the message names the file, record, line and the problem."""

    def __init__(
        self,
        path: PathLike,
        problem: str,
        *,
        line: int | None = None,
        record: str | None = None,
        hint: str = "",
    ) -> None:
        self.path = str(path)
        self.problem = problem
        self.line = line
        self.record = record
        where = self.path
        if line is not None:
            where += f", line {line}"
        if record is not None:
            where += f", record {record!r}"
        super().__init__(f"{where}: {problem}{hint}")


@dataclass
class ReadReport:
    """What reading kept and what it left out; skipped records are counted by reason."""

    files: list[str] = field(default_factory=list)
    records: int = 0  # records found in the input (valid or not)
    proteins: int = 0  # records kept
    residues: int = 0  # residues of the kept records
    skipped: dict[str, int] = field(default_factory=dict)  # invalid records, by reason
    too_short: int = 0
    too_long: int = 0
    duplicates: int = 0
    examples: list[str] = field(default_factory=list)  # first few skip messages
    dedupe_bytes: int = 0  # memory held by the duplicate detector
    max_examples: int = 5
    # kept records worth a warning (they are read all the same)
    nucleotide_like: int = 0  # >= NUCLEOTIDE_MIN residues, all of A/C/G/T/U/N
    nucleotide_example: str = ""
    duplicate_accessions: int = 0  # records whose accession an earlier record already had
    duplicate_example: str = ""

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def skip(self, reason: str, message: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.examples) < self.max_examples:
            self.examples.append(message)

    def summary(self) -> str:
        parts = [f"{self.proteins:,} proteins", f"{self.residues:,} residues"]
        parts.append(f"from {self.records:,} records in {len(self.files)} file(s)")
        dropped = []
        for reason, n in sorted(self.skipped.items()):
            dropped.append(f"{n:,} {reason}")
        if self.too_short:
            dropped.append(f"{self.too_short:,} shorter than min_length")
        if self.too_long:
            dropped.append(f"{self.too_long:,} longer than max_length")
        if self.duplicates:
            dropped.append(f"{self.duplicates:,} exact duplicates")
        text = ", ".join(parts)
        text += "; skipped: " + (", ".join(dropped) if dropped else "none")
        return text

    def warnings(self) -> list[str]:
        """Kept input that looks wrong: nucleotide sequences, repeated accessions."""
        out = []
        if self.nucleotide_like:
            out.append(
                f"{self.nucleotide_like:,} of {self.proteins:,} proteins look like nucleotides "
                f"(only A/C/G/T/U/N, e.g. {self.nucleotide_example!r}): is this DNA or RNA? "
                "protein-performer reads amino-acid sequences (translate them first)"
            )
        if self.duplicate_accessions:
            out.append(
                f"{self.duplicate_accessions:,} records repeat an earlier record's accession "
                f"(e.g. {self.duplicate_example!r}); all are kept, but per-protein outputs "
                "keyed by accession will hold it more than once"
            )
        return out

    def __str__(self) -> str:
        return self.summary()
