"""Parse and validate mutation strings against a wild type.

Single mutants look like ``A24G``, multi-mutants like ``A24G:K30R``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from protein_performer.data.alphabet import RARE_AMINO_ACIDS, STANDARD_AMINO_ACIDS
from protein_performer.errors import InputError

_SINGLE = re.compile(r"^([A-Za-z])(-?\d+)([A-Za-z])$")
_RESIDUES = STANDARD_AMINO_ACIDS + RARE_AMINO_ACIDS


class MutationError(InputError):
    """A mutation string is malformed or does not fit the wild type."""


@dataclass(frozen=True)
class Mutation:
    """One substitution; ``index`` is 0-based into the wild-type sequence."""

    wt: str
    index: int
    mt: str


def parse_mutant(text: str, wild_type: str, *, offset: int = 1, row: str = "") -> list[Mutation]:
    """``"A24G:K30R"`` -> [Mutation], checked against ``wild_type``.

    ``offset`` is the number of the wild type's first residue (1 for 1-based numbering).
    ``row`` names where the string came from (e.g. ``"row 3"``) in error messages.
    """
    where = f"{row}: " if row else ""
    parts = [p.strip() for p in str(text).split(":")]
    if not parts or any(not p for p in parts):
        raise MutationError(f"{where}empty mutation in {text!r} (write e.g. A24G or A24G:K30R)")
    out: list[Mutation] = []
    seen: set[int] = set()
    for part in parts:
        m = _SINGLE.match(part)
        if m is None:
            raise MutationError(
                f"{where}cannot parse mutation {part!r} in {text!r}: expected "
                "<wild-type residue><position><mutant residue>, e.g. A24G"
            )
        wt, pos, mt = m.group(1).upper(), int(m.group(2)), m.group(3).upper()
        for name, letter in (("wild-type", wt), ("mutant", mt)):
            if letter not in _RESIDUES:
                raise MutationError(
                    f"{where}mutation {part!r}: unknown {name} residue {letter!r} "
                    f"(allowed: {_RESIDUES})"
                )
        index = pos - offset
        if not 0 <= index < len(wild_type):
            raise MutationError(
                f"{where}mutation {part!r}: position {pos} is outside the wild type "
                f"(positions {offset}..{offset + len(wild_type) - 1} with offset={offset})"
            )
        found = wild_type[index].upper()
        if found != wt:
            raise MutationError(
                f"{where}mutation {part!r}: the wild type has {found!r} at position {pos}, "
                f"not {wt!r} (check the wild-type sequence or the numbering offset={offset})"
            )
        if index in seen:
            raise MutationError(f"{where}mutant {text!r} changes position {pos} twice")
        seen.add(index)
        out.append(Mutation(wt, index, mt))
    return out


def apply_mutant(wild_type: str, mutations: list[Mutation]) -> str:
    """The mutant sequence."""
    seq = list(wild_type)
    for m in mutations:
        seq[m.index] = m.mt
    return "".join(seq)


def read_mutation_table(path: str | Path, column: str, measured: str | None):
    """The mutants CSV as a DataFrame with ``column`` and, when given or present,
    a ``measured`` column; returns (table, measured column or None).

    Raises :class:`MutationError` naming the file and the fix: an empty file, a header
    without rows, an unparsable CSV or a missing column.
    """
    import pandas as pd

    p = Path(path)
    example = f"a header line '{column},measured' then one mutant per line, e.g. 'A24G,0.7'"
    try:
        table = pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise MutationError(f"mutations={p}: the file is empty; write {example}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0]
        raise MutationError(
            f"mutations={p}: not a readable CSV ({reason}); write {example}"
        ) from err
    if column not in table.columns:
        raise MutationError(
            f"mutations={p}: no column {column!r} (columns: {list(table.columns)}); set "
            f"mutant_column= to the column holding mutants like A24G"
        )
    if measured is None and "measured" in table.columns:
        measured = "measured"
    if measured is not None and measured not in table.columns:
        raise MutationError(
            f"mutations={p}: no measured column {measured!r} (columns: {list(table.columns)}); "
            f"set measured= to one of them, or measured=null"
        )
    if len(table) == 0:
        raise MutationError(f"mutations={p}: a header and no mutants; add rows: {example}")
    return table, measured
