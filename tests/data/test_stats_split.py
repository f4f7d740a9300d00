"""Corpus statistics and random / cluster splits."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from protein_performer.data.corpus.split import (
    SplitError,
    cluster_split,
    parse_fractions,
    random_split,
)
from protein_performer.data.corpus.stats import corpus_stats
from protein_performer.data.fasta.reading import load_proteins, read_fasta
from protein_performer.data.fasta.report import FastaFormatError
from protein_performer.data.storage.prepare import prepare_store

SEQS = ["MKV", "MKVLA", "ACDEFGHIKLMNPQRSTVWY", "MMMMMMMMMM", "XXLL"]


def _fasta(path: Path, seqs: list[str], prefix: str = "p") -> Path:
    path.write_text("".join(f">{prefix}{i} d\n{s}\n" for i, s in enumerate(seqs)))
    return path


def test_stats_against_direct_counts(tmp_path: Path) -> None:
    fa = _fasta(tmp_path / "a.fa", SEQS)
    st = corpus_stats(fa)
    lengths = np.array([len(s) for s in SEQS])
    assert st.summary["proteins"] == 5 and st.summary["residues"] == lengths.sum()
    assert st.summary["length_max"] == 20 and st.summary["length_median"] == np.median(lengths)
    counts = Counter("".join(SEQS))
    row = st.residues.set_index("token")
    for aa in "AMKX":
        assert row.loc[aa, "count"] == counts[aa]
        assert row.loc[aa, "frequency"] == pytest.approx(counts[aa] / lengths.sum())
    assert st.length_histogram["proteins"].sum() == 5
    f = np.array([c / lengths.sum() for c in counts.values()])
    assert st.summary["unigram_perplexity"] == pytest.approx(
        np.exp(-(f * np.log(f)).sum()), rel=1e-3
    )
    # same numbers from a store and from an in-memory source
    prepare_store([fa], tmp_path / "s", progress=False)
    for other in (corpus_stats(tmp_path / "s"), corpus_stats(load_proteins([fa])[0])):
        assert other.summary["residues"] == st.summary["residues"]
        assert (other.residues["count"].values == st.residues["count"].values).all()
    png = st.plot(tmp_path / "o/stats.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "unigram_perplexity" in st.to_text()


def test_stats_malformed_raises(tmp_path: Path) -> None:
    bad = tmp_path / "b.fa"
    bad.write_text(">a\nMK\n>b\n")
    with pytest.raises(FastaFormatError, match="line 3.*empty sequence"):
        corpus_stats(bad)


def test_parse_fractions() -> None:
    assert parse_fractions("train=0.8,valid=0.2") == {"train": 0.8, "valid": 0.2}
    for bad in ("train=0.8", "train=x,valid=1", "train"):
        with pytest.raises(SplitError):
            parse_fractions(bad)


def _read_split(files: dict[str, str]) -> dict[str, list]:
    return {k: list(read_fasta(v)) for k, v in files.items()}


def test_random_split_exact_and_deterministic(tmp_path: Path) -> None:
    seqs = ["MK" + "A" * (i % 17) + "V" * (i % 5) for i in range(101)]
    fa = _fasta(tmp_path / "a.fa", seqs)
    r = random_split([fa], tmp_path / "o", "train=0.8,valid=0.1,test=0.1", seed=3)
    assert r.proteins == {"train": 81, "valid": 10, "test": 10}
    out = _read_split(r.files)
    accs = [x.accession for v in out.values() for x in v]
    assert sorted(accs) == sorted(f"p{i}" for i in range(101))
    orig = {x.accession: x for x in read_fasta(fa)}
    for v in out.values():
        for x in v:
            assert (
                x.sequence == orig[x.accession].sequence
                and x.description == orig[x.accession].description
            )
    r2 = random_split([fa], tmp_path / "o2", "train=0.8,valid=0.1,test=0.1", seed=3)
    assert {k: [x.accession for x in v] for k, v in _read_split(r2.files).items()} == {
        k: [x.accession for x in v] for k, v in out.items()
    }


def test_cluster_split_keeps_clusters_whole(tmp_path: Path) -> None:
    n = 200
    fa = _fasta(tmp_path / "a.fa", ["MKV" + "L" * (i % 7) for i in range(n)])
    rng = np.random.default_rng(0)
    cluster = rng.integers(0, 40, n)
    rows = [f"p{np.flatnonzero(cluster == c)[0]}\tp{i}" for i, c in enumerate(cluster) if i != 7]
    tsv = tmp_path / "c.tsv.gz"
    tsv.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    r = cluster_split([fa], tsv, tmp_path / "o", "train=0.7,valid=0.15,test=0.15", seed=1)
    assert r.unclustered == 1 and sum(r.proteins.values()) == n
    where = {}
    for name, recs in _read_split(r.files).items():
        for x in recs:
            where[x.accession] = name
    assert len(where) == n
    for c in np.unique(cluster):
        members = [f"p{i}" for i in np.flatnonzero(cluster == c) if i != 7]
        assert len({where[m] for m in members}) == 1, f"cluster {c} split"
    assert all(v > 0 for v in r.proteins.values())
    bad = tmp_path / "bad.tsv"
    bad.write_text("only-one-column\n")
    with pytest.raises(SplitError, match="line 1"):
        cluster_split([fa], bad, tmp_path / "o3")
