"""FASTA reader: formats, malformed inputs (file/line/record named), skip counting, filters."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from protein_performer.data.alphabet import ALPHABET, tokens_to_letters
from protein_performer.data.fasta.accessions import parse_accession
from protein_performer.data.fasta.options import ReadOptions
from protein_performer.data.fasta.reading import load_proteins, read_fasta
from protein_performer.data.fasta.report import FastaFormatError, ReadReport

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data/sample/valid.fasta.gz"


def _write(path: Path, text: str | bytes, gz: bool = False) -> Path:
    data = text.encode() if isinstance(text, str) else text
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _reference(text: str) -> list[tuple[str, str]]:
    """A naive line-by-line reader: (header, sequence) pairs."""
    out: list[tuple[str, list[str]]] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(">"):
            out.append((line[1:], []))
        elif line.strip():
            out[-1][1].append(line.strip())
    return [(h, "".join(s).upper().rstrip("*")) for h, s in out]


TEXT = (
    ">sp|P69905|HBA_HUMAN Hemoglobin subunit alpha OS=Homo sapiens\n"
    "MVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTKTYFPHF\nDLSHGSAQVKGHGKKVADALTNAVAHV\n"
    ">tr|Q6GZX4|001R_FRG3G Putative\nmafsaedvlkeydrrrrmeal*\n"
    ">A0A183 GO=GO:0031424\nMSQQKQ\nQSWKPP\nNV\n"
    ">UniRef50_Q6GZX4 cluster\nXBZUO\n"
)


@pytest.mark.parametrize(
    "header, acc",
    [
        ("sp|P69905|HBA_HUMAN Hemoglobin", "P69905"),
        (">tr|Q6GZX4|001R_FRG3G Putative", "Q6GZX4"),
        ("A0A183 GO=GO:0031424,GO:1", "A0A183"),
        ("UniRef50_Q6GZX4 n=1", "UniRef50_Q6GZX4"),
        (b"P12345", "P12345"),
        ("", ""),
    ],
)
def test_parse_accession(header, acc) -> None:
    assert parse_accession(header) == acc


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("block_size", [7, 1 << 20])
def test_read_matches_reference(tmp_path: Path, gz: bool, crlf: bool, block_size: int) -> None:
    text = TEXT.replace("\n", "\r\n") if crlf else TEXT
    # gzip detected by content, whatever the suffix says
    path = _write(tmp_path / "x.fa", text, gz=gz)
    from protein_performer.data.fasta.blocks import BlockReader

    recs = list(read_fasta(path))
    ref = _reference(TEXT)
    assert [(r.description, r.sequence.decode()) for r in recs] == ref
    assert [r.accession for r in recs] == ["P69905", "Q6GZX4", "A0A183", "UniRef50_Q6GZX4"]
    assert [r.line for r in recs] == [1, 4, 6, 10]
    # tiny blocks: records straddle block boundaries
    blocks = list(BlockReader(path, block_size=block_size, want_lines=True))
    assert sum(len(b.lengths) for b in blocks) == 4
    assert [x for b in blocks for x in b.lines] == [1, 4, 6, 10]


def test_load_proteins_tokens_and_wrapping(tmp_path: Path) -> None:
    seq = "ACDEFGHIKLMNPQRSTVWYXBZUO" * 7
    for width in (1, 13, 60, 10_000):
        lines = "\n".join(seq[i : i + width] for i in range(0, len(seq), width))
        path = _write(tmp_path / f"w{width}.fa", f">a\n{lines}\n>b\n{lines.lower()}*\n")
        src, rep = load_proteins([path])
        assert len(src) == 2 and rep.proteins == 2 and rep.residues == 2 * len(seq)
        for i in range(2):
            np.testing.assert_array_equal(src[i], ALPHABET.encode(seq))
        assert src.accession(1) == "b"


def _err(tmp_path: Path, text: str | bytes, **kw) -> FastaFormatError:
    path = _write(tmp_path / "bad.fa", text) if not isinstance(text, Path) else text
    with pytest.raises(FastaFormatError) as info:
        list(read_fasta(path, ReadOptions(**kw)))
    assert str(path) in str(info.value)
    return info.value


def test_empty_file(tmp_path: Path) -> None:
    e = _err(tmp_path, "")
    assert "empty file" in str(e)
    e = _err(tmp_path, "\n  \n")
    assert "empty file" in str(e)
    gz = _write(tmp_path / "e.fa.gz", b"", gz=True)
    assert "empty file" in str(_err(tmp_path, gz))


def test_sequence_before_header(tmp_path: Path) -> None:
    e = _err(tmp_path, "\n\nMKV\n>a\nMK\n")
    assert e.line == 3 and "before the first header" in str(e) and "line 3" in str(e)


def test_empty_sequence(tmp_path: Path) -> None:
    e = _err(tmp_path, ">a\nMK\n>sp|P1|X desc\n>c\nMK\n")
    assert e.line == 3 and e.record == "P1" and "empty sequence" in str(e)
    e = _err(tmp_path, ">a\nMK\n>last")
    assert e.line == 3 and e.record == "last"


def test_invalid_character_names_line_and_column(tmp_path: Path) -> None:
    e = _err(tmp_path, ">a\nMK\n>b desc\nMKVL\nMK1V\n")
    assert (e.line, e.record) == (5, "b")
    assert "'1'" in str(e) and "column 3" in str(e) and "line 5" in str(e)


def test_gaps_error_unless_removed(tmp_path: Path) -> None:
    path = _write(tmp_path / "aln.fa", ">a\nMK-V.L\n>b\nM--K\n")
    e = _err(tmp_path, path)
    assert e.line == 2 and "gap" in str(e) and "remove-gaps" in str(e)
    recs = list(read_fasta(path, ReadOptions(remove_gaps=True)))
    assert [r.sequence for r in recs] == [b"MKVL", b"MK"]


def test_inner_stop_is_invalid(tmp_path: Path) -> None:
    e = _err(tmp_path, ">a\nMK*V\n")
    assert "stop" in str(e) and e.record == "a"


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress((">a\n" + "MKV" * 5000 + "\n").encode() * 50)
    path = tmp_path / "t.fa.gz"
    path.write_bytes(data[: len(data) // 2])
    e = _err(tmp_path, path)
    assert "truncated gzip" in str(e)
    with pytest.raises(FastaFormatError, match="truncated gzip"):
        load_proteins([path], ReadOptions(on_invalid="skip"))


def test_skip_counts_by_reason(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "mix.fa", ">ok1\nMK\n>empty\n>bad\nMJ\n>gap\nM-K\n>ok2\nLL*\n>bad2\nBZ#\n"
    )
    report = ReadReport()
    recs = list(read_fasta(path, ReadOptions(on_invalid="skip"), report=report))
    assert [r.accession for r in recs] == ["ok1", "ok2"]
    assert report.skipped == {"empty sequence": 1, "invalid character": 2, "gap character": 1}
    assert report.records == 6 and report.proteins == 2
    assert any("line 5" in x and "'bad'" in x for x in report.examples)
    src, rep = load_proteins([path], ReadOptions(on_invalid="skip"))
    assert len(src) == 2 and rep.n_skipped == 4 and "skipped" in rep.summary()


def test_length_filters_and_dedupe(tmp_path: Path) -> None:
    path = _write(tmp_path / "f.fa", ">a\nM\n>b\nMKV\n>c\nMKVLA\n>d\nmkv\n>e\nMKVLAGGG\n")
    src, rep = load_proteins([path], ReadOptions(min_length=2, max_length=5, dedupe=True))
    assert [src.accession(i) for i in range(len(src))] == ["b", "c"]
    assert (rep.too_short, rep.too_long, rep.duplicates) == (1, 1, 1)
    assert rep.records == 5 and rep.proteins == 2 and rep.residues == 8
    # dedupe spans files, first occurrence kept
    src2, rep2 = load_proteins([path, path], ReadOptions(dedupe=True))
    assert len(src2) == 4 and rep2.duplicates == 6


def test_dedupe_matches_set_on_sample(tmp_path: Path) -> None:
    recs = list(read_fasta(SAMPLE))
    doubled = _write(
        tmp_path / "d.fa",
        b"".join(
            b">" + r.description.encode() + b"\n" + r.sequence + b"\n" for r in recs + recs[:100]
        ),
    )
    src, rep = load_proteins([doubled], ReadOptions(dedupe=True))
    assert len(src) == len({r.sequence for r in recs})
    assert rep.duplicates == len(recs) + 100 - len(src)
    kept = {tokens_to_letters(src[i]) for i in range(len(src))}
    assert kept == {r.sequence for r in recs}


def test_matches_biopython_on_sample() -> None:
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    with gzip.open(SAMPLE, "rt") as h:
        ref = list(SimpleFastaParser(h))
    src, rep = load_proteins([SAMPLE])
    assert len(src) == len(ref) == rep.proteins
    for i in (0, 1, len(ref) // 2, len(ref) - 1):
        assert tokens_to_letters(src[i]).decode() == ref[i][1]
        assert src.accession(i) == ref[i][0].split()[0]
    assert int(src.lengths.sum()) == sum(len(s) for _, s in ref)


def test_read_options_validate_and_unfiltered_readers_refuse_filters(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_invalid must be 'error' or 'skip', got 'warn'"):
        ReadOptions(on_invalid="warn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_length must be >= 1, got 0"):
        ReadOptions(min_length=0)
    with pytest.raises(ValueError, match=r"max_length must be >= min_length \(5\), got 4"):
        ReadOptions(min_length=5, max_length=4)
    path = _write(tmp_path / "a.fa", ">a\nMKV\n>b\nMKV\n")
    # read_fasta keeps every valid record: a filter would be silently ignored, so it is refused
    with pytest.raises(ValueError, match="read_fasta keeps every valid record"):
        list(read_fasta(path, ReadOptions(dedupe=True)))
    assert len(load_proteins([path], ReadOptions(dedupe=True))[0]) == 1


def test_nucleotides_and_repeated_accessions_are_reported(tmp_path: Path, caplog) -> None:
    """Kept, but warned about: DNA read as protein (A/C/G/T/N are amino-acid letters too) and
    records that repeat an accession."""
    import logging

    dna = "ACGTTGCANNACGTAGCTAGCTAGGATC"  # 28 nucleotides
    fa = _write(tmp_path / "x.fa", f">sp|P1|X\n{dna}\n>P2\nMKVLAAGICT\n>sp|P1|Y\nMKV\n>P3\nACGT\n")
    with caplog.at_level(logging.WARNING):
        _, report = load_proteins([fa])
    assert report.proteins == 4 and report.nucleotide_like == 1  # ACGT: too short to tell
    assert report.duplicate_accessions == 1 and report.duplicate_example == "P1"
    warnings = report.warnings()
    assert (
        len(warnings) == 2 and "look like nucleotides" in warnings[0] and "sp|P1|X" in warnings[0]
    )
    assert "repeat an earlier record's accession" in warnings[1] and "'P1'" in warnings[1]
    assert "look like nucleotides" in caplog.text
    # a protein corpus raises neither
    _, clean = load_proteins([REPO / "data/sample/valid.fasta.gz"])
    assert clean.warnings() == []
