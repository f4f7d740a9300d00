"""Splitting a FASTA corpus into train/valid/test files: at random, or by clusters.

The cluster split keeps every cluster of a ``representative<TAB>member`` TSV (e.g. from
``mmseqs easy-cluster``) whole inside one split, so a held-out split shares no cluster with
training: the out-of-distribution split of the Performer paper.

Both read the input twice (count/assign, then write), so memory holds one small integer
per protein, plus the member -> cluster map for :func:`cluster_split`. Records are written
as read (header line unchanged), sequences cleaned (upper case, no trailing ``*``) and
wrapped at 60 columns; invalid records follow ``on_invalid`` and skipped ones are counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protein_performer.data.fasta.accessions import accession_bytes
from protein_performer.data.fasta.blocks import BlockReader
from protein_performer.data.fasta.options import DEFAULT_READ, ReadOptions
from protein_performer.data.fasta.reading import read_fasta
from protein_performer.data.fasta.report import FastaFormatError, PathLike, ReadReport, as_paths
from protein_performer.data.fasta.writer import open_output, write_fasta
from protein_performer.data.sampling.clusters import ClusterTsvError, read_clusters
from protein_performer.errors import InputError

DEFAULT_FRACTIONS = {"train": 0.9, "valid": 0.05, "test": 0.05}


class SplitError(InputError):
    """Bad split arguments (fractions, cluster file)."""


@dataclass
class SplitReport:
    """Proteins (and clusters) per split, the files written, and what reading skipped."""

    files: dict[str, str]
    proteins: dict[str, int]
    clusters: dict[str, int] = field(default_factory=dict)
    read: ReadReport = field(default_factory=ReadReport)
    unclustered: int = 0  # proteins absent from the cluster TSV (own singleton cluster)

    def summary(self) -> str:
        parts = []
        for name, n in self.proteins.items():
            c = f", {self.clusters[name]:,} clusters" if name in self.clusters else ""
            parts.append(f"{name}: {n:,} proteins{c} -> {self.files[name]}")
        text = "; ".join(parts)
        if self.unclustered:
            text += f"; {self.unclustered:,} proteins not in the cluster file kept as singletons"
        if self.read.n_skipped:
            text += f"; skipped: {self.read.summary().split('skipped: ')[-1]}"
        return text


def parse_fractions(spec: str | Mapping[str, float] | None) -> dict[str, float]:
    """``"train=0.9,valid=0.05,test=0.05"`` (or a mapping) -> validated dict summing to 1."""
    if spec is None:
        return dict(DEFAULT_FRACTIONS)
    if isinstance(spec, str):
        out: dict[str, float] = {}
        for item in spec.split(","):
            name, sep, value = item.partition("=")
            try:
                if not sep or not name.strip():
                    raise ValueError
                out[name.strip()] = float(value)
            except ValueError:
                raise SplitError(
                    f"fractions: cannot parse {item!r}; write e.g. 'train=0.9,valid=0.05,test=0.05'"
                ) from None
    else:
        out = {str(k): float(v) for k, v in spec.items()}
    if not out or any(v < 0 for v in out.values()) or abs(sum(out.values()) - 1) > 1e-6:
        raise SplitError(f"fractions must be >= 0 and sum to 1, got {out}")
    return out


def _quotas(n: int, fractions: dict[str, float]) -> np.ndarray:
    """Exact split sizes summing to n (largest remainder)."""
    raw = np.array(list(fractions.values())) * n
    q = np.floor(raw).astype(np.int64)
    rest = n - q.sum()
    q[np.argsort(-(raw - q), kind="stable")[:rest]] += 1
    return q


def _write(
    inputs: list[Path],
    assign: np.ndarray,
    names: list[str],
    out_dir: Path,
    suffix: str,
    options: ReadOptions,
) -> dict[str, str]:
    files = {name: str(out_dir / f"{name}{suffix}") for name in names}
    handles = [open_output(files[name]) for name in names]
    try:
        i = 0
        for path in inputs:
            for rec in read_fasta(path, options, report=ReadReport()):
                write_fasta(handles[assign[i]], rec.description, rec.sequence)
                i += 1
    finally:
        for h in handles:
            h.close()
    return files


def _accessions(inputs: list[Path], options: ReadOptions, report: ReadReport) -> list[bytes]:
    options.require_unfiltered("a split")
    accs: list[bytes] = []
    for path in inputs:
        for block in BlockReader(path, options, report=report):
            report.records += block.n_records
            report.proteins += len(block.lengths)
            report.residues += int(block.lengths.sum())
            accs.extend(accession_bytes(h) for h in block.headers)
    return accs


def random_split(
    inputs: Sequence[PathLike] | PathLike,
    out_dir: PathLike,
    fractions: str | Mapping[str, float] | None = None,
    seed: int = 0,
    *,
    options: ReadOptions = DEFAULT_READ,
    suffix: str = ".fasta.gz",
) -> SplitReport:
    """Shuffle proteins (seeded) into splits of exactly the given fractions (every valid
    record: ``options`` without filters)."""
    paths = as_paths(inputs)
    fr = parse_fractions(fractions)
    report = ReadReport()
    n = len(_accessions(paths, options, report))
    labels = np.repeat(np.arange(len(fr), dtype=np.int64), _quotas(n, fr))
    assign = np.random.default_rng(seed).permutation(labels)
    out = Path(out_dir)
    files = _write(paths, assign, list(fr), out, suffix, options)
    counts = np.bincount(assign, minlength=len(fr))
    return SplitReport(files, dict(zip(fr, map(int, counts))), read=report)


def cluster_split(
    inputs: Sequence[PathLike] | PathLike,
    cluster_tsv: PathLike,
    out_dir: PathLike,
    fractions: str | Mapping[str, float] | None = None,
    seed: int = 0,
    *,
    options: ReadOptions = DEFAULT_READ,
    suffix: str = ".fasta.gz",
) -> SplitReport:
    """Split so that each cluster lies wholly in one split, sizes close to ``fractions``.

    Clusters are shuffled (seeded) and laid end to end; a cluster goes to the split in
    whose share of the protein count its midpoint falls. Proteins missing from the TSV
    form their own clusters (counted in the report).
    """
    paths = as_paths(inputs)
    fr = parse_fractions(fractions)
    try:
        members = read_clusters(cluster_tsv)
    except ClusterTsvError as err:
        raise SplitError(str(err)) from None
    report = ReadReport()
    accs = _accessions(paths, options, report)
    cluster_of: dict[str, int] = {}
    ids = np.empty(len(accs), dtype=np.int64)
    unclustered = 0
    for i, acc in enumerate(accs):
        rep = members.get(acc.decode())
        if rep is None:
            unclustered += 1
            rep = "\0" + acc.decode()  # its own cluster, never equal to a real representative
        ids[i] = cluster_of.setdefault(rep, len(cluster_of))
    sizes = np.bincount(ids, minlength=len(cluster_of))
    order = np.random.default_rng(seed).permutation(len(cluster_of))
    mid = np.cumsum(sizes[order]) - sizes[order] / 2
    bounds = np.cumsum(list(fr.values()))[:-1] * max(len(accs), 1)
    cluster_split_id = np.empty(len(cluster_of), dtype=np.int64)
    cluster_split_id[order] = np.searchsorted(bounds, mid, side="right")
    assign = cluster_split_id[ids]
    files = _write(paths, assign, list(fr), Path(out_dir), suffix, options)
    counts = np.bincount(assign, minlength=len(fr))
    n_clusters = np.bincount(cluster_split_id, minlength=len(fr))
    return SplitReport(
        files,
        dict(zip(fr, map(int, counts))),
        dict(zip(fr, map(int, n_clusters))),
        read=report,
        unclustered=unclustered,
    )


__all__ = [
    "random_split",
    "cluster_split",
    "parse_fractions",
    "read_clusters",
    "SplitReport",
    "SplitError",
    "FastaFormatError",
]
