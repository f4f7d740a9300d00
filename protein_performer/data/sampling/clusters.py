"""Cluster TSVs (``representative<TAB>member``, as MMseqs2 / CD-HIT conversions write them):
one reader for the split command and the cluster sampler. Plain or gzip, by content."""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protein_performer.data.fasta.input import is_gzip
from protein_performer.data.fasta.report import PathLike
from protein_performer.errors import InputError, MissingInputError


class ClusterTsvError(InputError):
    """A cluster TSV that is missing or has a malformed line (the message names both)."""


def iter_cluster_pairs(path: PathLike) -> Iterator[tuple[str, str]]:
    """(representative, member) per line; blank lines skipped, CRLF accepted.

    A line needs two non-empty tab-separated fields; extra columns (scores) are ignored.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingInputError(f"{p}: no such cluster TSV")
    opener = gzip.open if is_gzip(p) else open
    with opener(p, "rt", encoding="utf-8", newline=None) as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            rep, member = (parts[0].strip(), parts[1].strip()) if len(parts) >= 2 else ("", "")
            if not rep or not member:
                raise ClusterTsvError(
                    f"{p}, line {lineno}: expected 'representative<TAB>member', got {line[:80]!r}"
                )
            yield rep, member


def read_clusters(path: PathLike) -> dict[str, str]:
    """member -> representative (the last line naming a member wins)."""
    return {member: rep for rep, member in iter_cluster_pairs(path)}


@dataclass
class ClusterReport:
    """What reading a cluster TSV against a corpus found (all counted, none silent)."""

    path: str
    n_lines: int = 0
    n_clusters: int = 0  # clusters with >= 1 corpus member, incl. singletons below
    n_members_missing: int = 0  # TSV members not in the corpus
    n_unclustered: int = 0  # corpus proteins in no cluster: each becomes a singleton cluster
    n_duplicate_members: int = 0  # members listed again (first cluster kept)

    def summary(self) -> str:
        return (
            f"{self.path}: {self.n_clusters} clusters over the corpus ({self.n_lines} TSV lines); "
            f"{self.n_members_missing} members not in the corpus, {self.n_unclustered} corpus "
            f"proteins without a cluster (singletons), {self.n_duplicate_members} duplicate members"
        )


def read_cluster_tsv(
    path: str | Path, accessions: Sequence[str]
) -> tuple[np.ndarray, ClusterReport]:
    """Map a cluster TSV onto a corpus.

    ``accessions[i]`` is the accession of corpus protein i; members written as full UniProt
    ids (``sp|P69905|HBA_HUMAN``) match by their accession. Returns ``cluster_ids`` (int64
    [N], dense from 0) and a report. Members absent from the corpus are counted; corpus
    proteins in no cluster become singleton clusters (counted).
    """
    path = Path(path)
    index = {acc: i for i, acc in enumerate(accessions)}
    cluster_of = np.full(len(accessions), -1, dtype=np.int64)
    rep_ids: dict[str, int] = {}
    report = ClusterReport(path=str(path))
    for rep, member in iter_cluster_pairs(path):
        report.n_lines += 1
        i = index.get(member)
        if i is None and "|" in member:
            # a full UniProt id (sp|P69905|HBA_HUMAN): the reader keys proteins by accession
            i = index.get(member.split("|")[1])
        if i is None:
            report.n_members_missing += 1
            continue
        if cluster_of[i] >= 0:
            report.n_duplicate_members += 1
            continue
        cluster_of[i] = rep_ids.setdefault(rep, len(rep_ids))
    if report.n_lines == 0:
        raise ClusterTsvError(f"{path}: no 'representative<TAB>member' lines")
    unclustered = np.flatnonzero(cluster_of < 0)
    report.n_unclustered = int(len(unclustered))
    cluster_of[unclustered] = len(rep_ids) + np.arange(len(unclustered))
    # dense ids over clusters that have corpus members
    _, dense = np.unique(cluster_of, return_inverse=True)
    report.n_clusters = int(dense.max()) + 1 if len(dense) else 0
    return dense.astype(np.int64), report
