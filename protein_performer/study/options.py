"""What a study evaluates: :class:`StudyOptions` (conf/study.yaml documents each field)."""

from __future__ import annotations

from dataclasses import dataclass, field

from protein_performer.benchmarks.tasks import get_task


@dataclass
class StudyOptions:
    """What the study evaluates (conf/study.yaml documents each field)."""

    splits: dict[str, str] = field(default_factory=dict)  # name -> FASTA / store
    n_maskings: int = 3
    max_proteins: int | None = None  # per split; None = all
    n_bootstrap: int = 1000
    analysis_fasta: str | None = None  # None = the first split
    analysis_proteins: int = 400
    threshold: float = 0.0
    min_total_weight: float = 0.0
    n_permutations: int = 1000
    favor_error_proteins: int = 8
    favor_error_features: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    # variant effects (task dms): benchmark data (protein-performer-data fetch-benchmarks);
    # None = no DMS section
    dms_data_dir: str | None = None
    dms_assays: list[str] | None = None
    dms_max_variants: int | None = 5000  # a seeded sample per assay (None: every variant)
    # contacts and probes (the Biology table): the same fetched folder; None = no section
    bio_data_dir: str | None = None
    bio_tasks: tuple[str, ...] = ("contacts", "ss", "location", "disorder")

    def __post_init__(self) -> None:
        if not self.splits:
            raise ValueError(
                "splits must name at least one evaluation set, e.g. "
                "{valid: data/sample/valid.fasta.gz}"
            )
        for name in ("n_maskings", "n_bootstrap", "analysis_proteins"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        self.favor_error_features = tuple(int(m) for m in self.favor_error_features)
        self.bio_tasks = tuple(self.bio_tasks)
        for name in self.bio_tasks:
            get_task(name)  # an unknown name fails here, naming the allowed ones
