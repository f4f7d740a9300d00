"""DataConfig: the typed, validated description of the data a run reads (the ``data`` group)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from protein_performer.data.fasta.options import ON_INVALID, ReadOptions
from protein_performer.data.storage.locations import is_url
from protein_performer.errors import InputError, MissingInputError

MODES = ("protein", "concat", "packed")
SPLITS = ("train", "valid", "test", "test_ood")


class DataInputError(InputError):
    """The configured data holds nothing to train or evaluate on; the message names the split,
    what reading left out and the setting to change."""


def _as_path_list(name: str, value: object) -> list[str]:
    # A lone string is one path; Hydra's ListConfig and tuples are sequences of paths.
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [str(value)]
    if isinstance(value, Sequence) or hasattr(value, "__iter__"):
        out = []
        for v in value:  # type: ignore[union-attr]
            if not isinstance(v, (str, Path)):
                raise ValueError(f"data.{name} must be a list of paths, got an entry {v!r}")
            out.append(str(v))
        return out
    raise ValueError(f"data.{name} must be a path or a list of paths, got {value!r}")


@dataclass
class DataConfig:
    """What to read and how to batch it.

    Splits are lists of FASTA files (plain or gzip) or prepared store directories; the
    files of one split are read as one corpus. ``mode="protein"``: one example per protein,
    ``[<cls>] + residues + [<eos>]`` cropped to ``max_length``; ``mode="concat"``: proteins
    joined by ``<sep>`` and cut into windows of ``max_length`` tokens; ``mode="packed"``: the
    training proteins' examples ``<cls> p <eos>`` written one after another in a seeded order
    per epoch and cut into windows (no padding), the other splits one example per protein.
    ``max_tokens`` switches to token-budget batching (protein mode). ``cluster_tsv``
    (``representative<TAB>member``) switches training to cluster-balanced sampling.
    ``min_length``/``max_protein_length``, ``dedupe``, ``on_invalid`` and ``remove_gaps`` go
    to the FASTA reader. A split may instead be one streamed shard set (a directory with
    ``shards.json`` or a URL such as ``s3://bucket/prefix``, :mod:`~.shards`); its training
    order is shuffled through a buffer
    of ``shuffle_buffer`` proteins per DataLoader worker.
    """

    train: list[str] = field(default_factory=list)
    valid: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    test_ood: list[str] = field(default_factory=list)
    mode: str = "protein"
    max_length: int = 512
    batch_size: int = 16
    max_tokens: int | None = None
    num_workers: int = 0
    seed: int = 0
    cluster_tsv: str | None = None
    min_length: int = 1
    max_protein_length: int | None = None
    dedupe: bool = False
    on_invalid: str = "error"
    remove_gaps: bool = False
    pin_memory: bool = False
    shuffle_buffer: int = 10_000

    def __post_init__(self) -> None:
        for split in SPLITS:
            setattr(self, split, _as_path_list(split, getattr(self, split)))
        if not self.train:
            raise ValueError("data.train must name at least one FASTA file or store directory")
        if not self.valid:
            raise ValueError("data.valid must name at least one FASTA file or store directory")
        if self.mode not in MODES:
            raise ValueError(f"data.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.on_invalid not in ON_INVALID:
            raise ValueError(
                f"data.on_invalid must be one of {', '.join(ON_INVALID)}, got {self.on_invalid!r}"
            )
        for name in (
            "max_length",
            "batch_size",
            "num_workers",
            "seed",
            "min_length",
            "shuffle_buffer",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"data.{name} must be an integer, got {v!r}")
        if self.max_length <= 2:
            raise ValueError(
                f"data.max_length must be > 2 (room for <cls>, <eos> and a residue), "
                f"got {self.max_length}"
            )
        if self.batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.shuffle_buffer < 1:
            raise ValueError(f"data.shuffle_buffer must be >= 1, got {self.shuffle_buffer}")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.min_length < 1:
            raise ValueError(f"data.min_length must be >= 1, got {self.min_length}")
        if self.max_protein_length is not None and self.max_protein_length < self.min_length:
            raise ValueError(
                f"data.max_protein_length must be >= data.min_length ({self.min_length}) or null, "
                f"got {self.max_protein_length}"
            )
        if self.max_tokens is not None:
            if self.mode != "protein":
                raise ValueError(
                    "data.max_tokens (token-budget batching) applies to mode=protein only; "
                    f"{self.mode} windows all have max_length tokens, use data.batch_size"
                )
            if self.max_tokens < self.max_length:
                raise ValueError(
                    f"data.max_tokens must be >= data.max_length ({self.max_length}) so the "
                    f"longest example fits a batch, got {self.max_tokens}"
                )
        if self.cluster_tsv is not None:
            self.cluster_tsv = str(self.cluster_tsv)
            if self.mode != "protein":
                raise ValueError(
                    "data.cluster_tsv (cluster-balanced sampling) applies to mode=protein only"
                )
            if self.max_tokens is not None:
                raise ValueError(
                    "data.cluster_tsv and data.max_tokens cannot be combined: cluster sampling "
                    "uses fixed data.batch_size batches (set data.max_tokens: null)"
                )

    def check_paths(self, splits: Sequence[str] = SPLITS) -> None:
        """Raise FileNotFoundError naming the field when an input path does not exist."""
        for split in splits:
            for p in getattr(self, split):
                # a URL is checked when it is opened (the manifest is read then)
                if not is_url(p) and not Path(p).exists():
                    raise MissingInputError(
                        f"data.{split}: no such file {p!r} "
                        "(give a FASTA file or a prepared store directory)"
                    )
        if self.cluster_tsv is not None and not Path(self.cluster_tsv).exists():
            raise MissingInputError(
                f"data.cluster_tsv: no such file {self.cluster_tsv!r} "
                "(give a representative<TAB>member TSV, plain or .gz, or null)"
            )

    @property
    def read_options(self) -> ReadOptions:
        """How the FASTA inputs are read (fasta.load_proteins / store.open_source)."""
        return ReadOptions(
            min_length=self.min_length,
            max_length=self.max_protein_length,
            dedupe=self.dedupe,
            on_invalid=self.on_invalid,
            remove_gaps=self.remove_gaps,
        )

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
