"""Causal AFT-simple: the prefix softmax over keys as a chunked scan with a running maximum
(hand-written autograd Function, O(L d) memory)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from protein_performer.attention.aft.common import smallest_normal
from protein_performer.attention.numerics import LOG2E, STAB_FLOOR

SCAN_CHUNK = 256


def causal_prefix_softmax(
    k: Tensor, v: Tensor, mask: Tensor | None, chunk: int | None = None
) -> Tensor:
    """sum_{t'<=t} exp(K_t') V_t' / sum_{t'<=t} exp(K_t') per channel, stably, O(L d) memory.

    k, v [B, H, L, Dh] (one dtype, computed in it); mask [B, L], True on real tokens. A scan
    over chunks of ``chunk`` rows (default :data:`SCAN_CHUNK`): chunk c is referenced to the
    running maximum M_c of the real keys up to its end; the sums of the earlier chunks enter as
    a carry rescaled by exp(M_prev - M_c) <= 1 (M starts at -1e4, so keys far below count as
    padded). Padded keys get weight 0 and zero gradients. Rows whose denominator is below the
    smallest normal float give 0 and pass no gradient: rows without a visible real key, and in
    float32 rows whose visible keys all lie ~87 below a later key of the same chunk. The
    backward is written out (:class:`_PrefixSoftmax`); every temporary is chunk-sized.
    """
    chunk = SCAN_CHUNK if chunk is None else chunk
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    if torch.is_grad_enabled() and (k.requires_grad or v.requires_grad):
        return _PrefixSoftmax.apply(k, v, mask, chunk)
    return _scan_forward(k, v, mask, chunk, keep=False)[0]


class _PrefixSoftmax(torch.autograd.Function):
    """Autograd of :func:`causal_prefix_softmax`: saves y, 1 / D and the chunk maxima (O(L d))
    and runs the transposed scan, a reverse loop over the chunks (:func:`_scan_backward`)."""

    @staticmethod
    def forward(ctx, k, v, mask, chunk):
        y, inv, maxima = _scan_forward(k, v, mask, chunk, keep=True)
        ctx.save_for_backward(k, v, mask, y, inv)
        ctx.maxima, ctx.chunk = maxima, chunk
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        k, v, mask, y, inv = ctx.saved_tensors
        gk, gv = _scan_backward(gy, k, v, mask, y, inv, ctx.maxima, ctx.chunk)
        return gk, gv, None, None


def _spans(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + chunk)) for s in range(0, n, chunk)]


def _key_bias(mask: Tensor | None, k: Tensor) -> Tensor | None:
    """[B, 1, L, 1]: 0 on real keys, -inf on padded ones (an add is cheaper than a bool mask)."""
    if mask is None:
        return None
    bias = torch.zeros(mask.shape[0], 1, mask.shape[1], 1, dtype=k.dtype, device=k.device)
    return bias.masked_fill_(~mask[:, None, :, None], float("-inf"))


def _exp_keys(k: Tensor, bias: Tensor | None, ref: Tensor | None, out: Tensor) -> Tensor:
    """out = K log2 e + bias (base-2 logits, for exp2), then exp2(out - ref) if ref is given."""
    if bias is None:
        torch.mul(k, LOG2E, out=out)
    else:
        torch.add(bias, k, alpha=LOG2E, out=out)
    return out if ref is None else out.sub_(ref).exp2_()


def _scan_forward(
    k: Tensor, v: Tensor, mask: Tensor | None, chunk: int, keep: bool
) -> tuple[Tensor, Tensor | None, list[Tensor]]:
    """y; with ``keep`` also 1 / D per row (0 where D <= tiny) and the running maxima (base 2,
    [B, H, 1, Dh]) of the chunks. Numerator and denominator are two planes of one buffer
    [B, H, 2, C, Dh], scanned by one cumsum."""
    b, h, n, d = k.shape
    bias, tiny = _key_bias(mask, k), smallest_normal(k)
    y = torch.empty_like(v)
    inv = k.new_empty(b, h, n, d) if keep else None
    x = k.new_empty(b, h, min(chunk, n), d)  # base-2 logits; 1 / D when not kept
    acc = k.new_empty(b, h, 2, min(chunk, n), d)
    maxima: list[Tensor] = []
    m = torch.full((), STAB_FLOOR * LOG2E, dtype=k.dtype, device=k.device)
    carry = None  # the earlier chunks' last [N | D] row, set at the end of each chunk
    for s0, s1 in _spans(n, chunk):
        xc, ac = x[:, :, : s1 - s0], acc[:, :, :, : s1 - s0]
        num, den = ac[:, :, 0], ac[:, :, 1]
        _exp_keys(k[:, :, s0:s1], None if bias is None else bias[:, :, s0:s1], None, xc)
        m_prev, m = m, torch.maximum(xc.amax(dim=-2, keepdim=True), m)
        e = torch.sub(xc, m, out=den).exp2_()
        torch.mul(e, v[:, :, s0:s1], out=num)
        if maxima:  # the earlier chunks, rescaled from M_prev to M_c
            ac[:, :, :, :1].addcmul_(carry, torch.exp2(m_prev - m)[:, :, None])
        ac.cumsum_(dim=-2)
        carry = ac[:, :, :, -1:].clone()  # the buffer is reused
        r = inv[:, :, s0:s1] if keep else xc
        torch.reciprocal(F.threshold_(den, tiny, float("inf")), out=r)  # D <= tiny: 0
        torch.mul(num, r, out=y[:, :, s0:s1])
        maxima.append(m)
    return y, inv, maxima


def _scan_backward(
    gy: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    y: Tensor,
    inv: Tensor,
    maxima: list[Tensor],
    chunk: int,
) -> tuple[Tensor, Tensor]:
    """dK, dV: the chunks in reverse, each a reverse cumsum of [g_N | g_D] plus the carry.

    With e_s = exp(K_s - M_c(s)), N = sum_{s<=t} e_s V_s, D = sum_{s<=t} e_s, y = N / D:
    g_N = g / D, g_D = -g y / D; A_s = sum_{t>=s} g_N_t exp(M_c(s) - M_c(t)) (factors <= 1;
    the carry of the later chunks is rescaled to each chunk's maximum), B_s likewise from g_D;
    dV = e A, dK = e (V A + B). The maxima carry no gradient (y does not depend on them).
    """
    b, h, n, d = k.shape
    bias = _key_bias(mask, k)
    gk, gv = torch.empty_like(k), torch.empty_like(v)
    x = k.new_empty(b, h, min(chunk, n), d)  # e
    acc = k.new_empty(b, h, 2, min(chunk, n), d)  # [g_N | -g_D]
    spans = _spans(n, chunk)
    carry = None  # the later chunks' gradient sums, rescaled to this chunk's maximum
    for i in reversed(range(len(spans))):
        s0, s1 = spans[i]
        e, g = x[:, :, : s1 - s0], acc[:, :, :, : s1 - s0]
        _exp_keys(k[:, :, s0:s1], None if bias is None else bias[:, :, s0:s1], maxima[i], e)
        g_num = torch.mul(gy[:, :, s0:s1], inv[:, :, s0:s1], out=g[:, :, 0])
        torch.mul(g_num, y[:, :, s0:s1], out=g[:, :, 1])
        rev = g.flip(-2)  # the reverse cumsum as a cumsum
        if i < len(spans) - 1:
            rev[:, :, :, :1].add_(carry)
        rev.cumsum_(dim=-2)
        if i:  # everything from this chunk on, rescaled to the previous chunk's maximum
            carry = rev[:, :, :, -1:] * torch.exp2(maxima[i - 1] - maxima[i])[:, :, None]
        ab = rev.flip(-2)
        a, neg_b = ab[:, :, 0], ab[:, :, 1]
        torch.mul(e, a, out=gv[:, :, s0:s1])
        torch.mul(torch.mul(v[:, :, s0:s1], a).sub_(neg_b), e, out=gk[:, :, s0:s1])
    return gk, gv
