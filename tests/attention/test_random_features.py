"""Random projections: shapes, orthogonality, norms, Haar sign fix, determinism."""

import math

import torch

from protein_performer.attention import gaussian_orthogonal_random_matrix
from protein_performer.attention.favor.projection import (
    draw_projection,
    iid_gaussian_random_matrix,
    seeded_generator,
)
from protein_performer.seeding import mix_seed


def test_blocks_are_orthogonal_and_shapes():
    m, d = 20, 8
    w = gaussian_orthogonal_random_matrix(m, d, scaling=1, dtype=torch.float64)
    assert w.shape == (m, d)
    assert torch.allclose(w.norm(dim=1), torch.full((m,), math.sqrt(d), dtype=torch.float64))
    for start in range(0, m, d):
        block = w[start : start + d] / math.sqrt(d)
        gram = block @ block.T
        assert torch.allclose(gram, torch.eye(block.shape[0], dtype=torch.float64), atol=1e-12)


def test_chi_norms_have_the_gaussian_row_norm_distribution():
    d = 16
    w = gaussian_orthogonal_random_matrix(4000, d, scaling=0, dtype=torch.float64)
    sq = w.norm(dim=1) ** 2  # chi^2_d: mean d, variance 2d
    assert abs(sq.mean().item() - d) < 5 * math.sqrt(2 * d / 4000)
    assert not torch.allclose(w.norm(dim=1), w.norm(dim=1)[0].expand(4000))


def test_haar_sign_fix_makes_diagonal_mean_zero():
    # For Haar-uniform orthogonal matrices E[Q_ii] = 0; an uncorrected QR biases it.
    d, draws = 4, 600
    gen = torch.Generator().manual_seed(1234)
    diag = torch.stack(
        [
            torch.diagonal(
                gaussian_orthogonal_random_matrix(
                    d, d, scaling=1, generator=gen, dtype=torch.float64
                )
            )
            / math.sqrt(d)
            for _ in range(draws)
        ]
    )
    se = math.sqrt(1.0 / d / draws)
    assert diag.mean(0).abs().max().item() < 5 * se


def test_seeded_draws_are_deterministic_and_distinct():
    a = draw_projection(32, 8, generator=seeded_generator(0, 1, 100))
    b = draw_projection(32, 8, generator=seeded_generator(0, 1, 100))
    c = draw_projection(32, 8, generator=seeded_generator(0, 2, 100))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert mix_seed(0, 1, 2) != mix_seed(0, 2, 1)
    iid = iid_gaussian_random_matrix(5, 3, generator=seeded_generator(3))
    assert iid.shape == (5, 3) and iid.dtype == torch.float32
    assert draw_projection(5, 3, feature_type="iid", generator=seeded_generator(3)).equal(iid)
