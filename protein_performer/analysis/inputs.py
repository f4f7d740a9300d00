"""What an analysis reads: a checkpoint's model, proteins (FASTA or a prepared store), and
which protein the attention-map figure shows."""

from __future__ import annotations

from pathlib import Path

import torch

from protein_performer.analysis.options import AnalysisInputError
from protein_performer.data.source import ProteinSource

EMBEDDED_VALID = Path(__file__).resolve().parents[2] / "data" / "sample" / "valid.fasta.gz"


def open_proteins(path: str | Path) -> ProteinSource:
    """A FASTA file (plain or gzip) or prepared store as a ProteinSource with >= 1 protein."""
    p = Path(path)
    if not p.exists():
        raise AnalysisInputError(f"input not found: {p} (give a FASTA file or a prepared store)")
    try:
        from protein_performer.data.store import open_source  # FASTA or prepared store
    except ImportError:
        open_source = None
    if open_source is not None:
        source = open_source(p)
    else:
        from protein_performer.data.fasta import load_proteins

        source, _ = load_proteins([p])
    if len(source) == 0:
        raise AnalysisInputError(f"{p} holds no proteins")
    return source


def load_model(ckpt_path: str | Path) -> torch.nn.Module:
    """The model of a training checkpoint (:func:`protein_performer.model.checkpoint.load_lm`)."""
    p = Path(ckpt_path)
    if not p.is_file():
        raise AnalysisInputError(
            f"checkpoint not found: {p} (set ckpt_path= to a .ckpt written by "
            f"protein-performer-train, e.g. <run dir>/checkpoints/last.ckpt)"
        )
    from protein_performer.model.checkpoint import load_lm

    model = load_lm(p).model
    model.eval()
    return model


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
