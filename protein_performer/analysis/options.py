"""How attention is aggregated and compared (:class:`AnalysisOptions`), and the error a bad
input or option raises (:class:`AnalysisInputError`, a one-line ``ValueError``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protein_performer.analysis.substitution import load_matrix
from protein_performer.errors import InputError

DEFAULT_MATRICES = ("BLOSUM62", "BLOSUM45", "BLOSUM80", "PAM250")


class AnalysisInputError(InputError):
    """A user input cannot be analysed (missing checkpoint or file, no proteins, bad option)."""


@dataclass
class AnalysisOptions:
    """How attention is aggregated and compared (conf/analyze.yaml documents each field)."""

    n_proteins: int | None = 800
    threshold: float = 0.1
    min_total_weight: float = 100.0
    direct_log: bool = True
    direct_pseudocount: float = 1.0
    reference: str = "BLOSUM62"
    matrices: Sequence[str] = DEFAULT_MATRICES
    n_permutations: int = 1000
    seed: int = 0
    max_length: int | None = None
    attention_budget: int = 2**24  # B * heads * L * L elements per batch (all layers)
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.n_proteins is not None and self.n_proteins <= 0:
            raise AnalysisInputError(f"n_proteins must be > 0 or null (all), got {self.n_proteins}")
        if not 0.0 <= self.threshold < 1.0:
            raise AnalysisInputError(f"threshold must be in [0, 1), got {self.threshold}")
        if self.min_total_weight < 0:
            raise AnalysisInputError(f"min_total_weight must be >= 0, got {self.min_total_weight}")
        if self.direct_pseudocount < 0:
            raise AnalysisInputError(
                f"direct_pseudocount must be >= 0, got {self.direct_pseudocount}"
            )
        if self.n_permutations < 0:
            raise AnalysisInputError(f"n_permutations must be >= 0, got {self.n_permutations}")
        self.matrices = list(dict.fromkeys([self.reference, *self.matrices]))
        for name in self.matrices:
            load_matrix(name)  # unknown names fail here, before any model runs
