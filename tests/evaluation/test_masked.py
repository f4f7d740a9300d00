"""Masked-LM evaluation: fixed-seed masking, spread over maskings, pseudo-perplexity, windows."""

from __future__ import annotations

import numpy as np
import pytest
from evaluation_toys import BiKGramLM, ConstantLM, random_proteins  # noqa: E402

from protein_performer.data.alphabet import ALPHABET  # noqa: E402
from protein_performer.evaluation.perplexity import EvalOptions, evaluate_source  # noqa: E402
from protein_performer.evaluation.unigram import (  # noqa: E402
    token_counts,
    unigram_log_probs,
    unigram_residue_metrics,
)

CPU = dict(device="cpu", progress=False)
LENGTHS = [5, 37, 12, 80, 3, 21, 50]


@pytest.fixture(scope="module")
def lp() -> np.ndarray:
    return unigram_log_probs(token_counts(random_proteins([300, 200], seed=11)))


def test_masked_is_deterministic_and_independent_of_batching(lp) -> None:
    src = random_proteins(LENGTHS, seed=1)
    model = BiKGramLM(2)
    run = lambda **kw: evaluate_source(  # noqa: E731
        model,
        src,
        objective="mlm",
        max_length=128,
        unigram_log_probs=lp,
        options=EvalOptions(**{**CPU, "batch_tokens": 256, **kw}),
    )
    a, b = run(), run()
    c = run(batch_tokens=90, chunk_proteins=2)
    assert a == b
    for key in ("nll_per_token", "accuracy", "n_tokens", "perplexity_std"):
        assert c[key] == pytest.approx(a[key], rel=1e-9)
    d = run(seed=1)
    assert d["nll_per_token"] != pytest.approx(a["nll_per_token"], rel=1e-9)


def test_masked_statistics_and_spread(lp) -> None:
    src = random_proteins([200] * 10, seed=2)
    out = evaluate_source(
        ConstantLM(lp),
        src,
        objective="mlm",
        max_length=256,
        unigram_log_probs=lp,
        options=EvalOptions(n_maskings=3, **CPU),
    )
    n_res = int(src.lengths.sum())
    # About 15% of the residues per masking, pooled over 3 maskings.
    assert 0.11 * 3 * n_res < out["n_tokens"] < 0.19 * 3 * n_res
    assert out["n_maskings"] == 3 and out["perplexity_std"] > 0
    # A model predicting the unigram distribution scores exactly the baseline.
    assert out["perplexity"] == pytest.approx(out["unigram_perplexity"], rel=1e-6)
    assert out["accuracy"] == pytest.approx(out["unigram_accuracy"])
    one = evaluate_source(
        ConstantLM(lp),
        src,
        objective="mlm",
        max_length=256,
        unigram_log_probs=lp,
        options=EvalOptions(n_maskings=1, **CPU),
    )
    assert one["perplexity_std"] == 0.0


def test_pseudo_perplexity_of_unigram_model_is_residue_baseline(lp) -> None:
    src = random_proteins(LENGTHS, seed=3)
    ref = unigram_residue_metrics(src, lp)
    for max_length in (128, 16):  # whole proteins, and through windows
        out = evaluate_source(
            ConstantLM(lp),
            src,
            objective="mlm",
            max_length=max_length,
            unigram_log_probs=lp,
            options=EvalOptions(n_maskings=1, pseudo_perplexity=True, batch_tokens=200, **CPU),
        )
        assert out["pseudo_n_tokens"] == ref["n_tokens"]  # every residue once
        assert out["pseudo_perplexity"] == pytest.approx(ref["perplexity"], rel=1e-6)


@pytest.mark.parametrize("pseudo", [False, True])
def test_masked_windows_equal_full_context(lp, pseudo: bool) -> None:
    # A model that sees +-2 tokens: centered windows with >= 2 tokens each side are exact.
    model = BiKGramLM(2)
    src = random_proteins(LENGTHS, seed=4)
    opts = dict(n_maskings=2, pseudo_perplexity=pseudo, batch_tokens=300, **CPU)
    full = evaluate_source(
        model,
        src,
        objective="mlm",
        max_length=128,
        unigram_log_probs=lp,
        options=EvalOptions(**opts),
    )
    win = evaluate_source(
        model,
        src,
        objective="mlm",
        max_length=12,
        unigram_log_probs=lp,
        options=EvalOptions(stride=6, **opts),
    )
    assert win["n_windowed_sequences"] > 0
    keys = ["n_tokens", "nll_per_token", "accuracy"]
    keys += ["pseudo_n_tokens", "pseudo_nll_per_token"] if pseudo else []
    for key in keys:
        assert win[key] == pytest.approx(full[key], rel=1e-9), key


def test_special_tokens_never_scored_in_masked_mode(lp) -> None:
    src = random_proteins([30, 40], seed=5)
    model = ConstantLM(lp)
    out = evaluate_source(
        model,
        src,
        objective="mlm",
        max_length=64,
        unigram_log_probs=lp,
        options=EvalOptions(n_maskings=2, **CPU),
    )
    # Only residues are scored: the unigram NLL is finite (it is -inf outside residues).
    assert np.isfinite(out["unigram_nll_per_token"])
    assert ALPHABET.eos_idx not in ALPHABET.residue_idx
