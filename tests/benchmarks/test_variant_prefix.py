"""CLM variant scores through shared prefixes (each variant run from its last mutated token)
equal the naive float64 log-likelihood ratio of full rows, for every kind with decoding
states, in one window and in windows of a wild type longer than the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common import tiny_lm

from protein_performer.benchmarks import variant_scoring
from protein_performer.benchmarks.dms_data import Assay
from protein_performer.benchmarks.variant_scoring import plan_segments, score_assay, window_tokens
from protein_performer.data.alphabet import ALPHABET
from protein_performer.runner import Engine
from protein_performer.runner.prefix import (
    shared_prefix_log_probs,
    sharing_pays,
    walks_from_prefix,
)

LETTERS = "ACDEFGHIKLMNPQRSTVWY"


def _assay(length: int, n: int, seed: int) -> Assay:
    """Random singles, doubles and triples (sites anywhere, one near each end)."""
    rng = np.random.default_rng(seed)
    wild_type = "".join(rng.choice(list(LETTERS), length))
    sites = np.full((n, 3), -1, dtype=np.int64)
    alts = np.full((n, 3), "", dtype=object)
    for i in range(n):
        k = 1 + i % 3
        chosen = np.sort(rng.choice(length, k, replace=False))
        chosen[0] = 0 if i == 1 else chosen[0]
        chosen[-1] = length - 1 if i == 2 else chosen[-1]
        for j, s in enumerate(np.unique(chosen)):
            sites[i, j] = s
            alts[i, j] = rng.choice([a for a in LETTERS if a != wild_type[s]])
    return Assay("random", wild_type, sites, alts, np.zeros(n))


def _log_likelihood(model, tokens: np.ndarray) -> float:
    """Sum over targets t >= 1 of log p(token t | tokens < t), float64, one full row."""
    x = torch.from_numpy(tokens.astype(np.int64))[None]
    lp = torch.log_softmax(model(x)[0, :-1].double(), -1)
    return float(lp.gather(-1, x[0, 1:, None]).sum())


def _reference(model, assay: Assay, max_length: int) -> np.ndarray:
    """The plain log-likelihood ratio of each window's full rows, summed per variant."""
    wt = np.array([ALPHABET.index(a) for a in assay.wild_type], dtype=np.uint8)
    seg = plan_segments(assay, max_length)
    out = np.zeros(len(assay))
    with torch.no_grad():
        for i in range(len(seg.variant)):
            mutant = wt.copy()
            for s, a in zip(seg.sites[i], seg.alts[i]):
                if s >= 0:
                    mutant[s] = ALPHABET.index(a)
            w, _ = window_tokens(wt, int(seg.start[i]), int(seg.end[i]))
            m, _ = window_tokens(mutant, int(seg.start[i]), int(seg.end[i]))
            out[seg.variant[i]] += _log_likelihood(model, m) - _log_likelihood(model, w)
    return out


def _model(kind: str, max_length: int):
    model = tiny_lm(kind, max_length=max_length, causal=True).double()
    with torch.no_grad():  # non-trivial weights
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


@pytest.mark.parametrize("kind", ["exact", "favor_softmax", "favor_relu", "aft_simple"])
@pytest.mark.parametrize("length, max_length", [(20, 32), (40, 16)])  # one window; windows
def test_shared_prefix_scores_equal_full_rows(
    kind: str, length: int, max_length: int, monkeypatch
) -> None:
    monkeypatch.setattr(variant_scoring, "sharing_pays", lambda base, rows: True)
    model = _model(kind, max_length)
    assert walks_from_prefix(model)
    assay = _assay(length, 40, seed=length)
    # budget 30: suffix batches of a few rows, parents walked in several groups
    got, windows = score_assay(Engine(model, "cpu"), "clm", assay, max_length, budget=30)
    want = _reference(model, assay, max_length)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)
    assert (windows >= 1).all() and (windows.max() > 1) == (length + 2 > max_length)


def test_full_rows_fallback_agrees(monkeypatch) -> None:
    """Kinds without decoding states take one full row per variant: same scores."""
    model = _model("favor_softmax", 16)
    assay = _assay(40, 30, seed=3)
    fast, _ = score_assay(Engine(model, "cpu"), "clm", assay, 16, budget=64)
    monkeypatch.setattr(variant_scoring, "walks_from_prefix", lambda m: False)
    full, _ = score_assay(Engine(model, "cpu"), "clm", assay, 16, budget=64)
    np.testing.assert_allclose(fast, full, rtol=0, atol=1e-4)  # full rows: float32 log-probs


def test_bidirectional_models_do_not_walk_from_prefix() -> None:
    assert not walks_from_prefix(tiny_lm("favor_softmax", causal=False))


def test_parents_in_groups_and_rows_equal_to_the_base() -> None:
    """Parents walked 3 at a time, suffix batches of 2 rows, a row equal to the base and
    rows mutated at the first and last token: each row's sum from ``from_token`` on equals
    its full row's."""
    model = _model("favor_softmax", 16)
    g = np.random.default_rng(0)
    base = g.integers(6, 26, 12).astype(np.uint8)
    rows = np.tile(base, (14, 1))
    for i in range(1, 14):
        for s in g.choice(12, 1 + i % 3, replace=False):
            rows[i, s] = 6 + (base[s] - 6 + 1 + i) % 20
    rows[2, 0], rows[3, 11] = 27 - base[0] % 2, 27 - base[11] % 2
    last = np.array([np.flatnonzero(r != base).max(initial=-1) % 13 for r in rows])  # 12: none
    from_token = np.minimum(g.integers(0, 12, 14), last)
    got, base_lp = shared_prefix_log_probs(
        Engine(model, "cpu"), base, rows, from_token, budget=8, max_parents=3, max_rows=2
    )

    def per_target(row: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(row.astype(np.int64))[None]
        with torch.no_grad():
            lp = torch.log_softmax(model(x)[0, :-1].double(), -1)
        return np.concatenate([[0.0], lp.gather(-1, x[0, 1:, None])[:, 0].numpy()])

    want = [per_target(r)[f:].sum() for r, f in zip(rows, from_token)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    np.testing.assert_allclose(base_lp, per_target(base), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="from_token"):
        shared_prefix_log_probs(Engine(model, "cpu"), base, rows[1:2], np.array([12]))


def test_sharing_pays_with_many_rows_per_parent() -> None:
    base = np.arange(6, 16, dtype=np.uint8)
    singles = np.tile(base, (40, 1))
    singles[np.arange(40), np.arange(40) % 10] = 20  # parent: the base only
    doubles = singles.copy()
    doubles[:, 9] = 21  # 40 rows, 9 parents (the singles at 0..8) + the base
    assert sharing_pays(base, singles) and not sharing_pays(base, doubles)
