"""The chunk-parallel causal FAVOR+ equals the chunk loop and the float64 reference."""

import pytest
import torch

from protein_performer.attention import favor_causal, gaussian_orthogonal_random_matrix
from protein_performer.attention.favor_chunkwise import causal_favor_chunkwise


@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("length,chunk", [(37, 4), (64, 8), (50, 7), (20, 64), (33, 1), (300, 256)])
@pytest.mark.parametrize("eps", [1e-6, 0.3])
def test_chunkwise_equals_loop_forward_and_gradients(softmax, length, chunk, eps):
    torch.manual_seed(0)
    bh, d, dv, m = 4, 5, 4, 9
    q, k = torch.randn(bh, length, d, dtype=torch.float64), torch.randn(bh, length, d, dtype=torch.float64)
    k = k * torch.linspace(0.2, 3.0, length, dtype=torch.float64)[:, None]  # maxima jump
    v = torch.randn(bh, length, dv, dtype=torch.float64)
    w = gaussian_orthogonal_random_matrix(m, d, dtype=torch.float64)
    mask = torch.ones(bh, length, dtype=torch.bool)
    mask[0, :5] = False
    mask[1, -6:] = False
    mask[2] = False
    g = torch.randn(bh, length, dv, dtype=torch.float64)
    res = []
    for fn in (lambda *a: favor_causal._CausalFavor.apply(*a), causal_favor_chunkwise):
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        out = fn(qq, kk, vv, w, mask, eps, chunk, softmax)
        out.backward(g)
        res.append([out.detach(), qq.grad, kk.grad, vv.grad])
    for a, b in zip(*res):
        assert torch.isfinite(a).all()
        assert (a - b).abs().max() <= 1e-10 * max(b.abs().max().item(), 1.0)
