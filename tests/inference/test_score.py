"""Variant scores on toy models whose log-probabilities are known, checked by hand."""

import math

import numpy as np
import torch
from common import tiny_config

from protein_performer.data.alphabet import ALPHABET
from protein_performer.inference.mutations import parse_mutant
from protein_performer.inference.score import causal_log_likelihood, score_mutants, spearman
from protein_performer.model.lm import PerformerLM
from protein_performer.objective import Objective
from protein_performer.runner import Engine

WT = "MKTAYIAK"


def bias_only_lm(causal: bool, seed: int = 0) -> tuple[PerformerLM, np.ndarray]:
    """A PerformerLM whose logits are its head bias alone (token embeddings zeroed)."""
    torch.manual_seed(seed)
    model = PerformerLM(tiny_config(n_layers=1, causal=causal)).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.head_bias.copy_(torch.randn(len(ALPHABET), dtype=torch.float64))
    lp = torch.log_softmax(model.head_bias.detach(), -1).numpy()
    return model, lp


def test_masked_marginal_by_hand():
    model, lp = bias_only_lm(causal=False)
    i = ALPHABET.index
    got = score_mutants(
        Engine(model, "cpu"),
        WT,
        [parse_mutant("K2R", WT), parse_mutant("K2R:A4G", WT)],
        Objective("mlm"),
    )
    want = [lp[i("R")] - lp[i("K")], lp[i("R")] - lp[i("K")] + lp[i("G")] - lp[i("A")]]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_causal_log_likelihood_and_ratio_by_hand():
    model, lp = bias_only_lm(causal=True)
    i = ALPHABET.index
    want_wt = sum(lp[i(a)] for a in WT) + lp[ALPHABET.eos_idx]
    ll = causal_log_likelihood(Engine(model, "cpu"), [WT, "MK"])  # padded batch
    np.testing.assert_allclose(
        ll, [want_wt, lp[i("M")] + lp[i("K")] + lp[ALPHABET.eos_idx]], rtol=0, atol=1e-10
    )
    got = score_mutants(Engine(model, "cpu"), WT, [parse_mutant("Y5W", WT)], Objective("clm"))
    np.testing.assert_allclose(got, [lp[i("W")] - lp[i("Y")]], rtol=0, atol=1e-10)


def test_spearman_ignores_missing_measurements():
    assert math.isclose(spearman([1, 2, 3, 4], [10, 20, float("nan"), 40]), 1.0)
    assert math.isclose(spearman([1, 2, 3], [3, 2, 1]), -1.0)
