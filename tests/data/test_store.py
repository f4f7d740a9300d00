"""Prepared store: round-trip identical to the FASTA, manifest, errors, open_source."""

from __future__ import annotations

import gzip
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from protein_performer.data.alphabet import ALPHABET, count_tokens
from protein_performer.data.fasta.options import ReadOptions
from protein_performer.data.fasta.reading import load_proteins, read_fasta
from protein_performer.data.fasta.report import FastaFormatError
from protein_performer.data.source import InMemoryProteins, ProteinSource
from protein_performer.data.storage.npy import NpyAppender
from protein_performer.data.storage.prepare import prepare_store
from protein_performer.data.storage.store import ProteinStore, StoreError, open_source
from protein_performer.progress import Progress

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data/sample/valid.fasta.gz"


def test_npy_appender_roundtrip(tmp_path: Path) -> None:
    for dtype, parts in [
        (np.uint8, [np.arange(5), np.arange(0), np.arange(300) % 256]),
        (np.int64, [np.array([2**40, -1])]),
        (np.int64, []),
    ]:
        w = NpyAppender(tmp_path / "a.npy", dtype)
        for p in parts:
            w.append(p)
        w.close()
        want = (
            np.concatenate([np.asarray(p, dtype) for p in parts]) if parts else np.zeros(0, dtype)
        )
        got = np.load(tmp_path / "a.npy")
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want)


def test_count_tokens_matches_bincount() -> None:
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 1000):
        a = rng.integers(0, 31, n).astype(np.uint8)
        np.testing.assert_array_equal(count_tokens(a), np.bincount(a, minlength=31))


@pytest.mark.parametrize("block_size", [64, 1 << 20])
def test_roundtrip_equals_fasta(tmp_path: Path, block_size: int) -> None:
    report = prepare_store([SAMPLE], tmp_path / "s", progress=False, block_size=block_size)
    store = ProteinStore(tmp_path / "s")
    assert isinstance(store, ProteinSource)
    records = list(read_fasta(SAMPLE))
    assert len(store) == len(records) == report.proteins
    for i, rec in enumerate(records):
        np.testing.assert_array_equal(store[i], ALPHABET.encode(rec.sequence))
        assert store.accession(i) == rec.accession
    assert store.lengths.dtype == np.int64
    assert int(store.lengths.sum()) == report.residues == store.tokens.size
    np.testing.assert_array_equal(store.residue_counts, np.bincount(store.tokens, minlength=31))
    m = json.loads((tmp_path / "s/manifest.json").read_text())
    assert m["alphabet"] == list(ALPHABET.tokens) and m["n_proteins"] == len(records)
    assert store[-1].tolist() == store[len(store) - 1].tolist()
    with pytest.raises(IndexError):
        store[len(store)]
    # pickles by path (DataLoader workers), not by copying the arrays
    blob = pickle.dumps(store)
    assert len(blob) < 1000
    np.testing.assert_array_equal(pickle.loads(blob)[3], store[3])


def test_filters_skip_and_report(tmp_path: Path) -> None:
    fa = tmp_path / "x.fa.gz"
    fa.write_bytes(gzip.compress(b">a\nMKV\n>b\nM\n>c\nMKJ\n>sp|P1|N\nmkv\n>e\nACDEFGHIK\n"))
    options = ReadOptions(min_length=2, max_length=8, dedupe=True, on_invalid="skip")
    r = prepare_store([fa], tmp_path / "s", options, progress=False)
    s = ProteinStore(tmp_path / "s")
    assert [s.accession(i) for i in range(len(s))] == ["a"]
    assert (r.read.too_short, r.read.too_long, r.read.duplicates) == (1, 1, 1)
    assert r.read.skipped == {"invalid character": 1}
    m = json.loads((tmp_path / "s/manifest.json").read_text())
    assert m["read"]["skipped"] == {"invalid character": 1} and m["read"]["duplicates"] == 1
    ref, _ = load_proteins([fa], options)
    np.testing.assert_array_equal(s.tokens, ref.tokens)


def test_malformed_input_leaves_no_store(tmp_path: Path) -> None:
    fa = tmp_path / "bad.fa"
    fa.write_text(">a\nMKV\n>b\nMK1\n")
    with pytest.raises(FastaFormatError, match="line 4"):
        prepare_store([fa], tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


def test_existing_output(tmp_path: Path) -> None:
    fa = tmp_path / "a.fa"
    fa.write_text(">a\nMKV\n")
    prepare_store([fa], tmp_path / "s", progress=False)
    with pytest.raises(FileExistsError, match="overwrite"):
        prepare_store([fa], tmp_path / "s", progress=False)
    fa.write_text(">b\nMK\n")
    prepare_store([fa], tmp_path / "s", progress=False, overwrite=True)
    assert ProteinStore(tmp_path / "s").accession(0) == "b"
    (tmp_path / "other").mkdir()
    (tmp_path / "other/file").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        prepare_store([fa], tmp_path / "other", progress=False)


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such store.*protein-performer-data prepare"):
        ProteinStore(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="not a prepared store.*prepare"):
        ProteinStore(tmp_path / "empty")


def test_open_source(tmp_path: Path) -> None:
    fa = tmp_path / "a.fa"
    fa.write_text(">a\nMKV\n>b\nM\n")
    prepare_store([fa], tmp_path / "s", progress=False)
    assert isinstance(open_source(tmp_path / "s"), ProteinStore)
    src = open_source(fa, ReadOptions(min_length=2))
    assert isinstance(src, InMemoryProteins) and len(src) == 1
    with pytest.raises(FileNotFoundError):
        open_source(tmp_path / "nope.fa")


def test_progress_plain_lines_when_not_a_tty() -> None:
    buf = io.StringIO()
    p = Progress(100, "prepare", stream=buf, interval=0.0)
    p.update_to(50, "10 proteins")
    p.close()
    assert "prepare:  50.0%" in buf.getvalue() and "10 proteins" in buf.getvalue()


@pytest.mark.shared_data
def test_shared_valid_roundtrip(tmp_path: Path, swissprot: Path) -> None:
    valid = swissprot / "valid.fasta.gz"
    prepare_store([valid], tmp_path / "s", progress=False)
    store = ProteinStore(tmp_path / "s")
    ref, _ = load_proteins([valid])
    assert len(store) == len(ref) == 3000
    np.testing.assert_array_equal(store.tokens, ref.tokens)
    np.testing.assert_array_equal(store.offsets, ref.offsets)


def test_interrupted_prepare_is_replaced_with_overwrite(tmp_path: Path) -> None:
    """A prepare killed before its manifest leaves the store files only: --overwrite replaces
    them (it used to refuse the directory as "not empty"), without it the error says so."""
    fa = tmp_path / "a.fa"
    fa.write_text(">a\nMKV\n>b\nMKVL\n")
    out = tmp_path / "s"
    prepare_store([fa], out, progress=False)
    (out / "manifest.json").unlink()  # what a kill -9 before the last rename leaves
    (out / "manifest.json.tmp").write_text("{")
    with pytest.raises(FileExistsError, match="partial store.*--overwrite"):
        prepare_store([fa], out, progress=False)
    report = prepare_store([fa], out, progress=False, overwrite=True)
    assert report.proteins == 2 and len(ProteinStore(out)) == 2
    assert not (out / "manifest.json.tmp").exists()
    # a directory with other files is still refused, even with --overwrite
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/tokens.npy").write_text("x")
    (tmp_path / "mine/notes.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        prepare_store([fa], tmp_path / "mine", progress=False, overwrite=True)


@pytest.mark.parametrize(
    "text, options, reason",
    [
        (">a\nMK1\n>b\nMK2\n", {"on_invalid": "skip"}, "2 invalid character"),
        (">a\nMKV\n>b\nMKVL\n", {"min_length": 10}, "2 shorter than min_length"),
        ("", {}, None),
    ],
)
def test_no_proteins_left_is_an_error(tmp_path: Path, text, options, reason) -> None:
    """A store of 0 proteins is not written (it used to be, with exit status 0)."""
    fa = tmp_path / "a.fa"
    fa.write_text(text)
    error = StoreError if reason else FastaFormatError
    with pytest.raises(error, match=reason or "empty file") as exc:
        prepare_store([fa], tmp_path / "s", ReadOptions(**options), progress=False)
    assert str(fa) in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "s").exists()
