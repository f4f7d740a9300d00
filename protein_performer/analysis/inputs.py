"""What an analysis reads: a checkpoint's model, proteins (FASTA or a prepared store), and
which protein the attention-map figure shows."""

from __future__ import annotations

from pathlib import Path

import torch

from protein_performer.analysis.options import AnalysisInputError
from protein_performer.runner.inputs import open_input
from protein_performer.data.source import ProteinSource

EMBEDDED_VALID = Path(__file__).resolve().parents[2] / "data" / "sample" / "valid.fasta.gz"


open_proteins = open_input  # TODO(floor): callers move to runner.open_input


def load_model(ckpt_path: str | Path) -> torch.nn.Module:
    """The model of a training checkpoint, in eval mode
    (:func:`protein_performer.model.checkpoint.load_checkpoint`)."""
    from protein_performer.runner import load_model as load

    return load(ckpt_path).model


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
