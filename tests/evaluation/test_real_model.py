"""The scorers on real PerformerLMs: batched/padded scoring equals per-protein float64 forward."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from common import tiny_lm
from evaluation_toys import random_proteins

from protein_performer.data.alphabet import ALPHABET
from protein_performer.evaluation.perplexity import EvalOptions, evaluate_source
from protein_performer.evaluation.unigram import token_counts, unigram_log_probs

CPU = dict(device="cpu", progress=False)


@pytest.fixture(scope="module")
def lp_eos() -> np.ndarray:
    return unigram_log_probs(token_counts(random_proteins([300, 200], seed=11)), include_eos=True)


def test_causal_exact_model_equals_full_context_reference(lp_eos) -> None:
    # max_length >= every protein: one window each; batching pads, the reference does not.
    model = tiny_lm("exact", causal=True, max_length=64)
    src = random_proteins([5, 37, 12, 60, 3, 21], seed=6)
    out = evaluate_source(
        model,
        src,
        objective="clm",
        max_length=64,
        unigram_log_probs=lp_eos,
        options=EvalOptions(batch_tokens=128, **CPU),
    )
    assert out["n_windowed_sequences"] == 0
    model64 = tiny_lm("exact", causal=True, max_length=64).double()
    total, n, correct = 0.0, 0, 0
    with torch.no_grad():
        for i in range(len(src)):
            tok = torch.from_numpy(ALPHABET.wrap(src[i]))[None]
            logits = model64(tok, torch.ones_like(tok, dtype=torch.bool))[0, :-1]
            target = tok[0, 1:]
            total -= torch.log_softmax(logits, -1).gather(-1, target[:, None]).sum().item()
            correct += int((logits.argmax(-1) == target).sum())
            n += len(target)
    assert out["n_tokens"] == n
    assert out["nll_per_token"] == pytest.approx(total / n, rel=1e-5)
    assert out["accuracy"] == pytest.approx(correct / n)


def test_causal_windows_on_real_model_score_every_token_once(lp_eos) -> None:
    model = tiny_lm("favor_relu", causal=True, max_length=16)
    src = random_proteins([5, 37, 60], seed=7)
    out = evaluate_source(
        model,
        src,
        objective="clm",
        max_length=16,
        unigram_log_probs=lp_eos,
        options=EvalOptions(stride=8, **CPU),
    )
    assert out["n_windowed_sequences"] == 2
    assert out["n_tokens"] == int(src.lengths.sum()) + len(src)
    assert np.isfinite(out["perplexity"])


def test_masked_model_with_windows_is_deterministic() -> None:
    lp = unigram_log_probs(token_counts(random_proteins([300], seed=1)))
    model = tiny_lm("exact", causal=False, max_length=24)
    src = random_proteins([10, 70, 33], seed=8)
    opts = EvalOptions(n_maskings=2, pseudo_perplexity=True, batch_tokens=96, **CPU)
    a = evaluate_source(
        model, src, objective="mlm", max_length=24, unigram_log_probs=lp, options=opts
    )
    b = evaluate_source(
        model, src, objective="mlm", max_length=24, unigram_log_probs=lp, options=opts
    )
    assert a == b
    assert a["n_windowed_sequences"] == 2
    assert a["pseudo_n_tokens"] == int(src.lengths.sum())
    assert 1.0 < a["perplexity"] < 100
    # *_std is the sample std over maskings: rebuild masking 1 from the pooled sums minus
    # masking 0 alone (n_maskings=1 draws the same first masking)
    one = evaluate_source(
        model,
        src,
        objective="mlm",
        max_length=24,
        unigram_log_probs=lp,
        options=EvalOptions(n_maskings=1, batch_tokens=96, **CPU),
    )
    n0, n = one["n_tokens"], a["n_tokens"]
    nll1 = (a["nll_per_token"] * n - one["nll_per_token"] * n0) / (n - n0)
    per_masking = [one["perplexity"], math.exp(nll1)]
    assert per_masking[0] != per_masking[1]
    assert a["perplexity_std"] == pytest.approx(float(np.std(per_masking, ddof=1)), rel=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(lp_eos) -> None:
    model = tiny_lm("favor_relu", causal=True, max_length=32)
    src = random_proteins([5, 37, 12, 60], seed=9)
    cpu = evaluate_source(
        model,
        src,
        objective="clm",
        max_length=32,
        unigram_log_probs=lp_eos,
        options=EvalOptions(**CPU),
    )
    gpu = evaluate_source(
        model,
        src,
        objective="clm",
        max_length=32,
        unigram_log_probs=lp_eos,
        options=EvalOptions(device="cuda", progress=False),
    )
    assert gpu["n_tokens"] == cpu["n_tokens"]
    assert gpu["nll_per_token"] == pytest.approx(cpu["nll_per_token"], rel=1e-4)
