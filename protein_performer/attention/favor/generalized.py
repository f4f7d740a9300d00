"""FAVOR+ with a generalized kernel f (plain autograd): phi(x) = f(x W^T / sqrt(m)) + eps.

The softmax and ReLU kernels run hand-written autograd Functions instead
(:mod:`favor.bidirectional`, :mod:`favor.causal`); any other f takes these paths: features
through autograd, and causally :class:`_CausalChunks` (all chunks at once, chunk-parallel like
:mod:`favor.chunkwise`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def _with_ones(v: Tensor, mask: Tensor | None) -> Tensor:
    """[v, 1] [B, H, L, Dv+1], zero on padded keys: one matmul gives numerator and normaliser."""
    v1 = torch.cat([v, v.new_ones(v.shape[:-1] + (1,))], dim=-1)
    if mask is not None:
        v1 = v1 * mask[:, None, :, None].to(v.dtype)
    return v1


def _divide(num: Tensor) -> Tensor:
    """num [..., Dv+1] -> num[..., :Dv] / num[..., Dv]. A query with no real key to attend
    (a padded one, or a causal query before the first real key) has 0 / 0: it gets 0 and a
    zero gradient (``where`` rather than a clamp, whose backward would give 0 * inf)."""
    den = num[..., -1:]
    den = torch.where(den > 0, den, torch.ones_like(den))
    return num[..., :-1] / den


def _features(q, k, w, fn: Callable[[Tensor], Tensor], eps: float, mask: Tensor | None):
    """Generalized kernels f (plain autograd): query features f(q W^T / sqrt(m)) + eps, their
    row sums, and key features f(k W^T / sqrt(m)) without eps (zero on padded keys). The
    common factor of phi(q).phi(k) is dropped: it cancels in the attention ratio."""
    wt = w.transpose(-1, -2) * w.shape[0] ** -0.5
    phi_q = fn(q @ wt) + eps
    g_k = fn(k @ wt)
    if mask is not None:
        g_k = g_k * mask[:, None, :, None].to(g_k.dtype)
    return phi_q, phi_q.sum(-1, keepdim=True), g_k


def bidirectional_generalized(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    w: Tensor,
    fn: Callable[[Tensor], Tensor],
    eps: float,
    mask: Tensor | None,
) -> Tensor:
    """q, k [B, H, L, d], v [B, H, L, Dv], w [m, d], mask [B, L] -> [B, H, L, Dv]."""
    phi_q, _, g_k = _features(q, k, w, fn, eps, mask)
    v1 = _with_ones(v, mask)  # [B, H, L, Dv+1]
    # phi(K)^T [V, 1] with phi(k) = g_k + eps: the eps part is a rank-one term.
    state = g_k.transpose(-1, -2) @ v1 + eps * v1.sum(-2, keepdim=True)  # [B, H, m, Dv+1]
    return _divide(phi_q @ state)


def causal_generalized(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    w: Tensor,
    fn: Callable[[Tensor], Tensor],
    eps: float,
    mask: Tensor | None,
    chunk: int,
) -> Tensor:
    """Causal: q, k [B, H, L, d], v [B, H, L, Dv], w [m, d], mask [B, L] -> [B, H, L, Dv].

    No stabiliser; all chunks of ``chunk`` tokens at once (see :class:`_CausalChunks`)."""
    b, h, length, _ = q.shape
    dv = v.shape[-1]
    m = w.shape[0]
    chunk = min(chunk, length)
    n = -(-length // chunk)  # number of chunks
    pad = n * chunk - length
    phi_q, sum_q, kg = _features(q, k, w, fn, eps, mask)
    v1 = _with_ones(v, mask)  # [B, H, L, Dv+1]
    # Padded positions: zero features and values, so they change nothing.
    qc = nn.functional.pad(phi_q, (0, 0, 0, pad)).view(b, h, n, chunk, m)
    kc = nn.functional.pad(kg, (0, 0, 0, pad)).view(b, h, n, chunk, m)
    vc = nn.functional.pad(v1, (0, 0, 0, pad)).view(b, h, n, chunk, dv + 1)
    num = _CausalChunks.apply(qc, kc, vc)  # [B, H, N, C, Dv+1]
    num = num.view(b, h, n * chunk, dv + 1)[:, :, :length]
    # eps part of the key features: eps * sum_f phi(q_i)_f * sum_{j <= i} [v_j, 1]
    num = num + (eps * sum_q) * torch.cumsum(v1, dim=-2)
    return _divide(num)


class _CausalChunks(torch.autograd.Function):
    """Y_c = phi(Q_c) P_c + tril(phi(Q_c) phi(K_c)^T) V_c for all chunks c at once (generalized
    kernels; the softmax and ReLU kernels take :mod:`favor.causal`).

    qc, kc [B, H, N, C, m], vc [B, H, N, C, E]; P_c = sum_{c' < c} K_c'^T V_c' (exclusive
    cumsum of the chunk states). Keeps the per-chunk prefix states (O((L/C) m E)) besides the
    inputs; the [C, C] scores are recomputed in backward, whose state gradients are the reverse
    exclusive cumsum of the per-chunk ones.
    """

    @staticmethod
    def forward(ctx, qc: Tensor, kc: Tensor, vc: Tensor):
        b, h, n, c, m = qc.shape
        e = vc.shape[-1]
        q3, k3, v3 = (t.reshape(b * h * n, c, t.shape[-1]) for t in (qc, kc, vc))
        states = torch.bmm(k3.transpose(1, 2), v3).view(b, h, n, m, e)
        prefix = torch.zeros_like(states)
        torch.cumsum(states[:, :, :-1], dim=2, out=prefix[:, :, 1:])
        scores = torch.bmm(q3, k3.transpose(1, 2)).tril_()  # [BHN, C, C]
        out = torch.bmm(q3, prefix.view(b * h * n, m, e)).baddbmm_(scores, v3)
        ctx.save_for_backward(qc, kc, vc, prefix)
        return out.view(b, h, n, c, e)

    @staticmethod
    def backward(ctx, g_out: Tensor):
        qc, kc, vc, prefix = ctx.saved_tensors
        b, h, n, c, m = qc.shape
        e = vc.shape[-1]
        bhn = b * h * n
        q3, k3, v3 = (t.reshape(bhn, c, t.shape[-1]) for t in (qc, kc, vc))
        g3 = g_out.reshape(bhn, c, e).contiguous()
        g_prefix = torch.bmm(q3.transpose(1, 2), g3).view(b, h, n, m, e)
        # g_S_c = sum_{c' > c} g_P_c'
        g_states = torch.zeros_like(g_prefix)
        g_states[:, :, :-1] = torch.cumsum(g_prefix[:, :, 1:].flip(2), dim=2).flip(2)
        gs3 = g_states.view(bhn, m, e)
        scores = torch.bmm(q3, k3.transpose(1, 2)).tril_()
        g_v = torch.bmm(scores.transpose(1, 2), g3).baddbmm_(k3, gs3)
        g_scores = torch.bmm(g3, v3.transpose(1, 2)).tril_()
        g_q = torch.bmm(g3, prefix.view(bhn, m, e).transpose(1, 2)).baddbmm_(g_scores, k3)
        g_k = torch.bmm(g_scores.transpose(1, 2), q3).baddbmm_(v3, gs3.transpose(1, 2))
        return g_q.view_as(qc), g_k.view_as(kc), g_v.view_as(vc)
