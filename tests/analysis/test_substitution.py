"""Substitution matrices, comparison statistics, and planted attention patterns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from protein_performer.analysis.aggregate import (
    AMINO_ACIDS,
    AttentionAggregates,
    direct_ratio,
    head_shares,
    vig_similarity,
)
from protein_performer.analysis.substitution import (
    UnknownMatrixError,
    compare_matrices,
    load_matrix,
    mantel_p_value,
    pair_values,
)
from protein_performer.data.alphabet import ALPHABET


def test_blosum62_values_and_names():
    b = load_matrix("BLOSUM62")
    i = AMINO_ACIDS.index
    assert b.shape == (20, 20) and (b == b.T).all()
    assert b[i("W"), i("W")] == 11 and b[i("C"), i("C")] == 9 and b[i("A"), i("W")] == -3
    assert b[i("I"), i("V")] == 3 and b[i("K"), i("R")] == 2
    for name in ("blosum45", "BLOSUM80", "PAM250"):
        m = load_matrix(name)
        assert m.shape == (20, 20) and (m == m.T).all()
    with pytest.raises(UnknownMatrixError, match="BLOSUM99.*BLOSUM62"):
        load_matrix("BLOSUM99")
    with pytest.raises(UnknownMatrixError, match="lacks amino acids"):
        load_matrix("NUC.4.4")


def test_pair_values_counts():
    m = np.arange(400.0).reshape(20, 20)
    assert pair_values(m).shape == (190,) and pair_values(m, True).shape == (210,)
    assert pair_values(m)[0] == m[0, 1]


def test_statistics_against_scipy():
    rng = np.random.default_rng(0)
    b = load_matrix("BLOSUM62")
    x = rng.normal(size=(20, 20))
    res = compare_matrices(x, b, n_permutations=200)
    xs = (x + x.T) / 2
    iu, iu0 = np.triu_indices(20, 1), np.triu_indices(20, 0)
    pr = stats.pearsonr(xs[iu], b[iu])
    sr = stats.spearmanr(xs[iu], b[iu])
    assert res["pearson"] == pytest.approx(pr.statistic, abs=1e-12)
    assert res["pearson_p"] == pytest.approx(pr.pvalue, rel=1e-9)
    assert res["spearman"] == pytest.approx(sr.statistic, abs=1e-12)
    assert res["n_pairs"] == 190 and res["n_pairs_diag"] == 210
    assert res["pearson_diag"] == pytest.approx(stats.pearsonr(xs[iu0], b[iu0]).statistic)
    assert 0 < res["permutation_p"] <= 1


def test_mantel_test_against_brute_force():
    """The permutation relabels rows and columns jointly: check one permutation by hand."""
    rng = np.random.default_rng(3)
    b = load_matrix("BLOSUM62")
    x = b + rng.normal(scale=3.0, size=(20, 20))
    x = (x + x.T) / 2
    n = 300
    p = mantel_p_value(x, b, n_permutations=n, seed=5)
    # brute force with the same permutations
    perm_rng = np.random.default_rng(5)
    iu = np.triu_indices(20, 1)
    r_obs = stats.pearsonr(x[iu], b[iu]).statistic
    count = 0
    for _ in range(n):
        pi = perm_rng.permutation(20)
        xp = x[np.ix_(pi, pi)]
        count += stats.pearsonr(xp[iu], b[iu]).statistic >= r_obs - 1e-12
    assert p == pytest.approx((1 + count) / (1 + n))
    assert p < 0.01  # strongly related


def _random_proteins(n: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    residues = torch.randint(0, 20, (n, length), generator=g) + int(ALPHABET.standard_idx[0])
    cls = torch.full((n, 1), ALPHABET.cls_idx)
    eos = torch.full((n, 1), ALPHABET.eos_idx)
    return torch.cat([cls, residues, eos], dim=1)


def _class_of(tokens: torch.Tensor) -> torch.Tensor:
    return (tokens - int(ALPHABET.standard_idx[0])).clamp(0, 19)


@pytest.mark.parametrize("beta, r_min", [(1.0, 0.8), (0.3, 0.85)])
def test_planted_direct_pattern_follows_blosum_and_shuffled_does_not(beta, r_min):
    """Attention i -> j proportional to exp(beta * BLOSUM62[aa(i), aa(j)]) on random sequences.

    The log observed/expected ratio is then beta * B[a, b] plus per-amino-acid offsets (the
    softmax normaliser of each query type), so r is high but below 1 when beta is large.
    """
    b = load_matrix("BLOSUM62")
    tokens = _random_proteins(8, 60, seed=0)
    results = {}
    for name, labels in (
        ("planted", np.arange(20)),
        ("shuffled", np.random.default_rng(7).permutation(20)),
    ):
        bm = beta * torch.as_tensor(b[np.ix_(labels, labels)])
        cl = _class_of(tokens)
        logits = bm[cl[:, :, None], cl[:, None, :]]  # [B, L, L]
        attn = torch.softmax(logits, dim=-1)[:, None]  # [B, 1, L, L]
        agg = AttentionAggregates(1, 1, threshold=0.0)
        agg.update([attn], tokens)
        ratio = direct_ratio(agg.pair_mass[0], log=True)
        results[name] = compare_matrices(ratio, b, n_permutations=200)
    assert results["planted"]["pearson"] > r_min
    assert results["planted"]["permutation_p"] < 0.01
    assert abs(results["shuffled"]["pearson"]) < 0.3


def test_planted_vig_pattern_follows_blosum_and_shuffled_does_not():
    """20 heads, head c prefers targets X in proportion to exp(beta * BLOSUM62[c, X]): amino
    acids that substitute for each other are attended by the same heads, so the Vig
    similarity recovers BLOSUM62; with the amino-acid labels shuffled it does not."""
    b = load_matrix("BLOSUM62")
    tokens = _random_proteins(4, 40, seed=2)
    cl = _class_of(tokens)
    r = {}
    for name, labels in (
        ("planted", np.arange(20)),
        ("shuffled", np.random.default_rng(11).permutation(20)),
    ):
        z = 0.1 * torch.as_tensor(b[np.ix_(labels, labels)])  # [heads = 20, target type]
        logits = z[:, cl]  # [heads, B, L]: each query's preference over the targets
        attn = torch.softmax(logits, dim=-1).permute(1, 0, 2)[:, :, None, :]
        attn = attn.expand(-1, -1, tokens.shape[1], -1)  # [B, heads, L, L]
        agg = AttentionAggregates(1, 20, threshold=0.0)
        agg.update([attn], tokens)
        shares, kept = head_shares(agg.target_mass)
        r[name] = compare_matrices(vig_similarity(shares, kept), b, n_permutations=200)
    assert r["planted"]["pearson"] > 0.85
    assert r["planted"]["permutation_p"] < 0.01
    assert abs(r["shuffled"]["pearson"]) < 0.3
