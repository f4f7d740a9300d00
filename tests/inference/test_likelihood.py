"""Per-protein likelihoods: hand sums on toy models, windows, and evaluation's numbers."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from common import tiny_lm
from test_score import bias_only_lm  # tests/inference is on sys.path (pytest rootdir import)

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.source import InMemoryProteins
from protein_performer.evaluation.perplexity import EvalOptions, evaluate_source
from protein_performer.inference.likelihood import protein_likelihoods, write_likelihoods_csv
from protein_performer.inference.score import causal_log_likelihood
from protein_performer.model.lm import PerformerLM
from protein_performer.objective import Objective
from protein_performer.runner import Engine

SEQS = ["MKTAYIAK", "MK", "", "ACDEFGHIKLMNPQRSTVWY" * 4]  # the last one: 82 tokens > 64


def _source(seqs: list[str]) -> InMemoryProteins:
    arrays = [ALPHABET.encode(s).astype(np.uint8) for s in seqs]
    return InMemoryProteins.from_arrays(arrays, [f"P{i}" for i in range(len(seqs))])


def _run(model, seqs, objective, **kw):
    kw.setdefault("max_length", model.cfg.max_length)
    return list(
        protein_likelihoods(
            Engine(model, "cpu"),
            _source(seqs),
            objective=Objective(objective),
            progress=False,
            **kw,
        )
    )


def test_causal_equals_hand_sum_of_bias_log_probs():
    model, lp = bias_only_lm(causal=True)  # max_length 64: the last protein runs in windows
    i = ALPHABET.index
    got = _run(model, SEQS, "clm", batch_tokens=100)
    for seq, p in zip(SEQS, got):
        want = sum(lp[i(a)] for a in seq) + lp[ALPHABET.eos_idx]
        assert (p.length, p.n_tokens) == (len(seq), len(seq) + 1)
        assert math.isclose(p.log_likelihood, want, rel_tol=0, abs_tol=1e-10)
        assert math.isclose(p.perplexity, math.exp(-want / (len(seq) + 1)), rel_tol=1e-12)


def test_pseudo_equals_hand_sum_of_bias_log_probs_in_windows():
    model, lp = bias_only_lm(causal=False)
    i = ALPHABET.index
    got = _run(model, SEQS, "mlm", window=16, stride=5)
    for seq, p in zip(SEQS, got):
        assert p.n_tokens == len(seq)  # every residue exactly once, <cls>/<eos> never
        assert math.isclose(p.log_likelihood, sum(lp[i(a)] for a in seq), abs_tol=1e-10)
    assert math.isnan(got[2].perplexity)  # no residue, nothing scored


def _tiny(causal: bool, max_length: int = 64) -> PerformerLM:
    return tiny_lm("exact", causal=causal, max_length=max_length).double()


def test_pseudo_equals_hand_masked_marginals():
    """Context-dependent model: mask each residue by hand, one forward each, and sum."""
    model = _tiny(causal=False)
    seq = "MKTAYIAKQRQ"
    tokens = torch.from_numpy(ALPHABET.wrap(ALPHABET.encode(seq)))
    want = 0.0
    for pos in range(1, len(seq) + 1):
        masked = tokens.clone()
        masked[pos] = ALPHABET.mask_idx
        with torch.no_grad():
            lp = torch.log_softmax(model(masked[None]), -1)[0, pos]
        want += float(lp[tokens[pos]])
    (got,) = _run(model, [seq], "mlm", batch_tokens=40)  # several batches
    assert math.isclose(got.log_likelihood, want, rel_tol=0, abs_tol=1e-10)


def test_causal_equals_variant_scoring_log_likelihood():
    model = _tiny(causal=True)
    short = [s for s in SEQS if len(s) + 2 <= 64]
    got = [p.log_likelihood for p in _run(model, short, "clm")]
    np.testing.assert_allclose(
        got, causal_log_likelihood(Engine(model, "cpu"), short), rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_equals_evaluation_per_protein_numbers(tmp_path, objective):
    """The same proteins (one longer than the window) through evaluation's per-protein CSV."""
    model = _tiny(causal=objective == "clm", max_length=24)
    seqs = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ", "ACDEF", "MKV" * 7]
    pseudo = objective == "mlm"
    evaluate_source(
        model,
        _source(seqs),
        objective=objective,
        max_length=24,
        unigram_log_probs=np.zeros(len(ALPHABET)),
        per_protein_csv=tmp_path / "e.csv",
        options=EvalOptions(device="cpu", progress=False, pseudo_perplexity=pseudo, n_maskings=1),
    )
    with open(tmp_path / "e.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    prefix = "pseudo_" if pseudo else ""
    mine = write_likelihoods_csv(
        Engine(model, "cpu"),
        tmp_path / "s.csv",
        {"x": _source(seqs)},
        objective=Objective(objective),
        max_length=24,
        progress=False,
    )
    with open(tmp_path / "s.csv", newline="") as f:
        ours = list(csv.DictReader(f))
    for e, o in zip(rows, ours, strict=True):
        assert (e["accession"], e["length"]) == (o["accession"], o["length"])
        assert int(e[f"{prefix}n_tokens"]) == int(o["n_tokens"])
        # evaluation writes 6 decimals
        assert math.isclose(float(e[f"{prefix}nll"]), float(o["nll_per_token"]), abs_tol=1e-6)
        assert math.isclose(float(e[f"{prefix}perplexity"]), float(o["perplexity"]), rel_tol=1e-6)
        assert o["method"] == ("pseudo" if pseudo else "exact") and o["file"] == "x"
    n = sum(int(o["n_tokens"]) for o in ours)
    ll = sum(float(o["log_likelihood"]) for o in ours)
    assert mine["x"]["n_sequences"] == 3 and mine["x"]["n_tokens"] == n
    assert math.isclose(mine["x"]["perplexity"], math.exp(-ll / n), rel_tol=1e-12)


def test_window_over_max_length_is_capped_and_bad_objective_named():
    model, _ = bias_only_lm(causal=True)
    with pytest.raises(ValueError, match="objective.name must be one of"):
        _run(model, SEQS, "xlm")
    with pytest.raises(ValueError, match="stride must be in"):
        _run(model, SEQS, "clm", window=8, stride=9)
