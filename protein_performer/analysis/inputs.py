"""Which protein the attention-map figure shows (the model and proteins come from
:mod:`protein_performer.runner`)."""

from __future__ import annotations

from protein_performer.analysis.options import AnalysisInputError
from protein_performer.data.source import ProteinSource


def protein_index(source: ProteinSource, which: int | str) -> int:
    """The index of ``which`` (an index or an accession) in ``source``."""
    if isinstance(which, str) and not which.lstrip("-").isdigit():
        for i in range(len(source)):
            if source.accession(i) == which:
                return i
        raise AnalysisInputError(f"map_protein: no protein with accession {which!r} in the input")
    i = int(which)
    if not 0 <= i < len(source):
        raise AnalysisInputError(f"map_protein must be in [0, {len(source)}), got {i}")
    return i
