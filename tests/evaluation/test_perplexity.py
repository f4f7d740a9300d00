"""Token-weighted perplexity, the unigram identity, and windows against full context."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from evaluation_toys import ConstantLM, KGramLM, random_proteins

from protein_performer.data.alphabet import ALPHABET
from protein_performer.evaluation.accumulator import PerplexityAccumulator
from protein_performer.evaluation.perplexity import EvalOptions, evaluate_source
from protein_performer.evaluation.unigram import token_counts, unigram_log_probs
from protein_performer.runner.pieces import causal_pieces

CPU = dict(device="cpu", progress=False)


def _unigram(include_eos: bool) -> np.ndarray:
    return unigram_log_probs(
        token_counts(random_proteins([300, 200], seed=11)), include_eos=include_eos
    )


def test_accumulator_is_token_weighted() -> None:
    acc = PerplexityAccumulator()
    acc.update(nll_sum=10.0, n_correct=3, n_tokens=4, n_sequences=1)  # batch 1: 4 tokens
    acc.update(nll_sum=30.0, n_correct=1, n_tokens=20, n_sequences=2)  # batch 2: 20 tokens
    assert acc.nll_per_token == pytest.approx(40.0 / 24)
    assert acc.perplexity == pytest.approx(math.exp(40.0 / 24))
    assert acc.accuracy == pytest.approx(4 / 24)
    assert acc.n_sequences == 3
    mean_of_batches = (math.exp(10 / 4) + math.exp(30 / 20)) / 2
    assert abs(acc.perplexity - mean_of_batches) > 0.5
    merged = PerplexityAccumulator(1.0, 1, 2, 1).merge(PerplexityAccumulator(3.0, 0, 2, 1))
    assert merged.as_dict()["perplexity"] == pytest.approx(math.exp(1.0))
    assert math.isnan(PerplexityAccumulator().perplexity)


def test_unigram_model_equals_unigram_baseline_causal() -> None:
    src = random_proteins([5, 37, 12, 80, 3, 21])
    lp = _unigram(include_eos=True)
    out = evaluate_source(
        ConstantLM(lp),
        src,
        objective="clm",
        max_length=64,
        unigram_log_probs=lp,
        options=EvalOptions(batch_tokens=100, **CPU),
    )
    assert out["perplexity"] == pytest.approx(out["unigram_perplexity"], rel=1e-6)
    assert out["accuracy"] == pytest.approx(out["unigram_accuracy"])
    # Every residue and each <eos> is scored once (<cls> never).
    assert out["n_tokens"] == int(src.lengths.sum()) + len(src)
    assert out["n_sequences"] == len(src)
    assert out["n_windowed_sequences"] == 1  # the 80-residue protein (82 tokens > 64)
    # Against a float64 reference over the same tokens.
    targets = np.concatenate([ALPHABET.wrap(src[i])[1:] for i in range(len(src))])
    assert out["nll_per_token"] == pytest.approx(-lp[targets].mean(), rel=1e-6)


def test_token_weighting_across_batches_of_different_sizes() -> None:
    # Two proteins in two batches (token budget 16): 3 and 40 scored tokens.
    src = random_proteins([2, 39], seed=5)
    lp = _unigram(include_eos=True)
    out = evaluate_source(
        ConstantLM(lp),
        src,
        objective="clm",
        max_length=64,
        unigram_log_probs=lp,
        options=EvalOptions(batch_tokens=16, **CPU),
    )
    t1, t2 = (ALPHABET.wrap(src[i])[1:] for i in range(2))
    nll1, nll2 = -lp[t1].sum(), -lp[t2].sum()
    assert out["n_tokens"] == 3 + 40
    assert out["perplexity"] == pytest.approx(math.exp((nll1 + nll2) / 43), rel=1e-6)
    assert out["perplexity"] != pytest.approx((math.exp(nll1 / 3) + math.exp(nll2 / 40)) / 2)


@pytest.mark.parametrize("window, stride", [(8, 4), (6, 3), (16, 5), (9, 5)])
def test_causal_windows_equal_full_context(tmp_path, window: int, stride: int) -> None:
    # A model whose context is 3 tokens: windows with >= 3 tokens of context are exact.
    k = 3
    assert window - stride >= k
    model = KGramLM(k)
    src = random_proteins([5, 37, 12, 80, 3, 21, 64], seed=2)
    lp = _unigram(include_eos=True)
    full = evaluate_source(
        model,
        src,
        objective="clm",
        max_length=128,
        unigram_log_probs=lp,
        options=EvalOptions(batch_tokens=512, **CPU),
        per_protein_csv=tmp_path / "full.csv",
    )
    win = evaluate_source(
        model,
        src,
        objective="clm",
        max_length=window,
        unigram_log_probs=lp,
        options=EvalOptions(batch_tokens=64, stride=stride, **CPU),
        per_protein_csv=tmp_path / "win.csv",
    )
    assert win["n_windowed_sequences"] > 0 and full["n_windowed_sequences"] == 0
    assert (win["window"], win["stride"]) == (window, stride)
    assert win["n_tokens"] == full["n_tokens"]
    assert win["nll_per_token"] == pytest.approx(full["nll_per_token"], rel=1e-9)
    assert win["accuracy"] == full["accuracy"]
    # Float64 reference: one model call per protein, full context.
    with torch.no_grad():
        total = 0.0
        for i in range(len(src)):
            tok = torch.from_numpy(ALPHABET.wrap(src[i]))[None]
            logp = torch.log_softmax(model(tok, torch.ones_like(tok, dtype=torch.bool)), -1)
            total -= logp[0, :-1].gather(-1, tok[0, 1:, None]).sum().item()
    assert full["nll_per_token"] == pytest.approx(total / full["n_tokens"], rel=1e-9)
    rows_full = list(csv.DictReader(open(tmp_path / "full.csv")))
    rows_win = list(csv.DictReader(open(tmp_path / "win.csv")))
    assert [r["accession"] for r in rows_win] == [src.accession(i) for i in range(len(src))]
    for a, b in zip(rows_full, rows_win):
        assert a["n_tokens"] == b["n_tokens"]
        assert float(a["nll"]) == pytest.approx(float(b["nll"]), rel=1e-5)


def test_short_windows_lose_context() -> None:
    # Sanity check of the test above: too little context changes the NLL.
    model = KGramLM(4)
    src = random_proteins([60], seed=1)
    lp = _unigram(include_eos=True)
    full = evaluate_source(
        model,
        src,
        objective="clm",
        max_length=128,
        unigram_log_probs=lp,
        options=EvalOptions(**CPU),
    )
    win = evaluate_source(
        model,
        src,
        objective="clm",
        max_length=8,
        unigram_log_probs=lp,
        options=EvalOptions(stride=7, **CPU),
    )
    assert win["n_tokens"] == full["n_tokens"]
    assert win["nll_per_token"] != pytest.approx(full["nll_per_token"], rel=1e-6)


def test_causal_pieces_targets() -> None:
    tokens = np.arange(10)
    pieces = causal_pieces(tokens, 4, 2)
    scored = sorted(int(t) for _, tgt in pieces for t in tgt if t != -100)
    assert scored == list(range(1, 10))  # every token but <cls>, once
    for inputs, tgt in pieces:
        for t, target in enumerate(tgt):
            if target != -100:
                assert target == inputs[t] + 1  # the next token


def test_per_protein_csv_streams_in_order(tmp_path) -> None:
    src = random_proteins([5, 37, 12, 80, 3, 21], seed=9)
    lp = _unigram(include_eos=True)
    path = tmp_path / "sub" / "proteins.csv"
    out = evaluate_source(
        ConstantLM(lp),
        src,
        objective="clm",
        max_length=32,
        unigram_log_probs=lp,
        per_protein_csv=path,
        options=EvalOptions(chunk_proteins=2, batch_tokens=40, **CPU),
    )
    rows = list(csv.DictReader(open(path)))
    assert list(rows[0]) == ["accession", "length", "n_tokens", "nll", "perplexity", "accuracy"]
    assert [r["accession"] for r in rows] == [src.accession(i) for i in range(len(src))]
    assert [int(r["length"]) for r in rows] == list(src.lengths)
    assert sum(int(r["n_tokens"]) for r in rows) == out["n_tokens"]
    total = sum(float(r["nll"]) * int(r["n_tokens"]) for r in rows)
    assert total / out["n_tokens"] == pytest.approx(out["nll_per_token"], rel=1e-5)
    for r in rows:
        assert float(r["perplexity"]) == pytest.approx(math.exp(float(r["nll"])), rel=1e-5)


def test_max_proteins_and_option_errors() -> None:
    src = random_proteins([5, 6, 7])
    lp = _unigram(include_eos=True)
    out = evaluate_source(
        ConstantLM(lp),
        src,
        objective="clm",
        max_length=32,
        unigram_log_probs=lp,
        options=EvalOptions(max_proteins=2, **CPU),
    )
    assert out["n_sequences"] == 2 and out["n_tokens"] == 5 + 6 + 2
    with pytest.raises(ValueError, match="objective"):
        evaluate_source(
            ConstantLM(lp),
            src,
            objective="xlm",
            max_length=32,
            unigram_log_probs=lp,
            options=EvalOptions(**CPU),
        )
    with pytest.raises(ValueError, match="pseudo_perplexity"):
        evaluate_source(
            ConstantLM(lp),
            src,
            objective="clm",
            max_length=32,
            unigram_log_probs=lp,
            options=EvalOptions(pseudo_perplexity=True, **CPU),
        )
    with pytest.raises(ValueError, match="batch_tokens"):
        EvalOptions(batch_tokens=0)
    with pytest.raises(ValueError, match="device"):
        evaluate_source(
            ConstantLM(lp),
            src,
            objective="clm",
            max_length=32,
            unigram_log_probs=lp,
            options=EvalOptions(device="tpu", progress=False),
        )


def test_prepared_store_scores_like_fasta(tmp_path) -> None:
    from protein_performer.data.storage.prepare import prepare_store
    from protein_performer.runner import open_input

    fasta = tmp_path / "p.fasta"
    fasta.write_text(">A1\nMKVLAAGIVG\n>A2\nACDEFGHIKLMNPQRSTVWYACDEF\n>A3\nMSTNPK\n")
    prepare_store([fasta], tmp_path / "store")
    lp = _unigram(include_eos=True)
    model = KGramLM(2)
    runs = [
        evaluate_source(
            model,
            open_input(p),
            objective="clm",
            max_length=16,
            unigram_log_probs=lp,
            options=EvalOptions(**CPU),
        )
        for p in (fasta, tmp_path / "store")
    ]
    assert runs[0] == runs[1]
    assert (
        token_counts(open_input(tmp_path / "store")).tolist()
        == token_counts(open_input(fasta)).tolist()
    )
