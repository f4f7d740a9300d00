"""Random projections for FAVOR+: orthogonal (Haar-uniform blocks) and i.i.d. Gaussian.

The projection ``W`` is [m, d]: row ``w_i`` is one random feature direction. FAVOR+ uses
orthogonal rows (stacked d x d blocks from QR of Gaussian matrices) because they lower the
variance of the kernel estimate (Choromanski et al. 2021, Theorem 2).
"""

from __future__ import annotations

import torch
from torch import Tensor

from protein_performer.attention.config import FEATURE_TYPES
from protein_performer.seeding import mix_seed


def _orthogonal_block(dim: int, generator: torch.Generator | None) -> Tensor:
    """A Haar-distributed [dim, dim] orthogonal matrix (float64, CPU)."""
    g = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    # QR fixes Q only up to column signs; multiplying by sign(diag(R)) makes Q Haar-uniform.
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q.T  # rows orthonormal


def gaussian_orthogonal_random_matrix(
    nb_features: int,
    dim: int,
    *,
    scaling: int = 0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """[nb_features, dim] matrix of orthogonal random features.

    Rows come in blocks of ``dim`` mutually orthogonal unit vectors (the last block
    truncated). ``scaling=0``: each row rescaled by an independent chi(dim)-distributed
    norm, so that each row is marginally N(0, I); ``scaling=1``: by sqrt(dim) (the
    "regularized" variant). Drawn on the CPU in float64 so that a seeded ``generator``
    gives the same matrix on every device and rank.
    """
    if nb_features <= 0 or dim <= 0:
        raise ValueError(f"nb_features and dim must be > 0, got {nb_features}, {dim}")
    if scaling not in (0, 1):
        raise ValueError(f"scaling must be 0 (chi norms) or 1 (sqrt(dim)), got {scaling}")
    blocks = []
    remaining = nb_features
    while remaining > 0:
        block = _orthogonal_block(dim, generator)
        blocks.append(block[: min(remaining, dim)])
        remaining -= dim
    w = torch.cat(blocks, dim=0)  # [m, d], unit rows
    if scaling == 0:
        norms = torch.randn(nb_features, dim, generator=generator, dtype=torch.float64).norm(dim=1)
    else:
        norms = torch.full((nb_features,), float(dim) ** 0.5, dtype=torch.float64)
    return (norms.unsqueeze(1) * w).to(dtype=dtype, device=device)


def iid_gaussian_random_matrix(
    nb_features: int,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """[nb_features, dim] matrix with i.i.d. N(0, 1) entries (the unstructured baseline)."""
    w = torch.randn(nb_features, dim, generator=generator, dtype=torch.float64)
    return w.to(dtype=dtype, device=device)


def draw_projection(
    nb_features: int,
    dim: int,
    *,
    feature_type: str = "orthogonal",
    scaling: int = 0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Dispatch on ``feature_type`` in :data:`FEATURE_TYPES`."""
    if feature_type == "orthogonal":
        return gaussian_orthogonal_random_matrix(
            nb_features, dim, scaling=scaling, generator=generator, dtype=dtype, device=device
        )
    if feature_type == "iid":
        return iid_gaussian_random_matrix(
            nb_features, dim, generator=generator, dtype=dtype, device=device
        )
    raise ValueError(f"attention.feature_type must be one of {FEATURE_TYPES}, got {feature_type!r}")


def seeded_generator(*parts: int) -> torch.Generator:
    """A CPU generator seeded with :func:`protein_performer.seeding.mix_seed` of ``parts``."""
    g = torch.Generator(device="cpu")
    g.manual_seed(mix_seed(*parts))
    return g
