"""Restart: an interrupted embedding run resumes to the same output, no protein twice or lost."""

import csv

import numpy as np
import pytest
from common import tiny_lm

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.source import InMemoryProteins
from protein_performer.inference.embed import embed_source
from protein_performer.inference.embedding_store import EmbeddingStore
from protein_performer.model.lm import PerformerLM
from protein_performer.runner import Engine

SEQS = ["MKTAYIAKQR", "MKV", "ACDEFGHIKLMNPQRSTVWYACDEFGHIK", "GG", "MSTNPKPQRK"]
SETTINGS = {"ckpt": "toy", "layers": [-1]}


def _source() -> InMemoryProteins:
    toks = [ALPHABET.encode(s) for s in SEQS]
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in toks])]).astype(np.int64)
    return InMemoryProteins(np.concatenate(toks), offsets, [f"P{i}" for i in range(len(SEQS))])


def _model() -> PerformerLM:
    return tiny_lm("favor_softmax", n_layers=1, max_length=16, position="rotary")


def _read(d) -> dict:
    with open(d / "index.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {r["accession"]: (r["mode"], np.load(d / r["file"])["layer-1"]) for r in rows}, rows


def test_interrupted_run_resumes_to_the_same_output(tmp_path, monkeypatch):
    model, source = _model(), _source()
    full = EmbeddingStore(tmp_path / "full", SETTINGS)
    embed_source(Engine(model, "cpu"), source, full, batch_tokens=32, progress=False)
    full.close()

    store = EmbeddingStore(tmp_path / "cut", SETTINGS)
    real_write, calls = EmbeddingStore.write, []

    def crash_after_two(self, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(args[0])
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(EmbeddingStore, "write", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        embed_source(Engine(model, "cpu"), source, store, batch_tokens=32, progress=False)
    store.close()
    monkeypatch.setattr(EmbeddingStore, "write", real_write)
    resumed = EmbeddingStore(tmp_path / "cut", SETTINGS)
    assert len(resumed.done) == 2
    assert (
        embed_source(Engine(model, "cpu"), source, resumed, batch_tokens=32, progress=False)
        == len(SEQS) - 2
    )
    resumed.close()

    got, rows = _read(tmp_path / "cut")
    want, _ = _read(tmp_path / "full")
    assert sorted(r["accession"] for r in rows) == sorted(f"P{i}" for i in range(len(SEQS)))
    assert got["P2"][0] == "whole_long" and got["P0"][0] == "whole"  # 31 tokens > 16: rotary FAVOR+
    for acc, (mode, arr) in want.items():
        assert got[acc][0] == mode
        np.testing.assert_array_equal(got[acc][1], arr)
    assert not list((tmp_path / "cut").rglob("*.tmp"))


def test_other_settings_refused(tmp_path):
    EmbeddingStore(tmp_path, SETTINGS).close()
    with pytest.raises(ValueError, match="other settings"):
        EmbeddingStore(tmp_path, {**SETTINGS, "layers": [0]})
