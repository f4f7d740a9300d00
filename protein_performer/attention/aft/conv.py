"""AFT-conv: a learned per-head kernel over relative offsets, as global sums plus banded
block products with a hand-written backward."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from protein_performer.attention.aft.common import shift_exp_keys, smallest_normal
from protein_performer.attention.aft.layers import AFTAttention
from protein_performer.attention.registry import register


@register("aft_conv")
class AFTConv(AFTAttention):
    """AFT-conv: per head a learned kernel over aft_conv_kernel relative offsets, 0 outside.

    Bidirectional offsets o = j - (K-1)//2 for kernel index j (centred); causal o = j - (K-1)
    (a left-padded conv). w_{t,t'} = kernel[h, t' - t + pad] inside, 0 outside. Computed as
    global sums + depthwise conv of exp(w - r) - exp(-r) over [e V, e], r_h = max(0, max w_h),
    both as block matrix products with a hand-written backward (:class:`_ConvCore`).
    No length limit; O(L K d) time, O(L d) memory. (The paper's kernel reparameterisation
    gamma (w - mean) / std + beta is not used; the kernel starts at 0, i.e. AFT-simple.)
    """

    def __init__(self, cfg, d_model: int, n_heads: int) -> None:
        super().__init__(cfg, d_model, n_heads)
        self.kernel_size = cfg.aft_conv_kernel
        self.kernel = nn.Parameter(torch.zeros(n_heads, cfg.aft_conv_kernel))

    @property
    def left_pad(self) -> int:
        ks = self.kernel_size
        return ks - 1 if self.causal else (ks - 1) // 2

    def decode_window(self) -> int | None:
        return self.kernel_size

    def decode_bias(self, position: int, n: int) -> Tensor:
        # causal offsets -(n-1)..0 are kernel indices K-n .. K-1
        return self.kernel[:, self.kernel_size - n :]

    def bias_matrix(self, length: int) -> Tensor:
        t = torch.arange(length, device=self.kernel.device)
        j = t[None, :] - t[:, None] + self.left_pad  # kernel index of (t, t')
        inside = (j >= 0) & (j < self.kernel_size)
        dense = self.kernel[:, j.clamp(0, self.kernel_size - 1)]  # [H, L, L]
        return dense * inside

    def _weighted(self, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        e = shift_exp_keys(k, mask)
        w = self.kernel.to(k.dtype)
        r = w.detach().amax(dim=-1, keepdim=True).clamp_min(0.0)  # [H, 1]
        base = (-r).exp()[:, 0]  # weight of an out-of-kernel key after the shift (a constant)
        coef = (w - r).exp() - base[:, None]  # [H, K]
        return _ConvCore.apply(e, v, coef, base, self.left_pad, self.causal)


# Rows per block of the banded products below: each block of _BLOCK output rows is one small
# matrix product with the _BLOCK + K - 1 input rows around it.
_BLOCK = 32


def _band_matrices(coef: Tensor, base: Tensor, left_pad: int, tri: str | None) -> Tensor:
    """[H, P, P + K - 1] block weights A[h, a, u] = coef[h, u - a] (0 outside the kernel).

    Row a of a block reads its window rows u (input row block_start - left_pad + u). ``tri``
    adds ``base`` on the in-block keys of a causal prefix sum ("lower": keys up to row a) or
    of its transpose ("upper": keys from row a to the block end).
    """
    h, ks = coef.shape
    p = _BLOCK
    a = torch.arange(p, device=coef.device)[:, None]
    u = torch.arange(p + ks - 1, device=coef.device)[None, :]
    j = u - a
    mats = coef[:, j.clamp(0, ks - 1)] * ((j >= 0) & (j < ks))
    if tri is not None:
        pos = u - left_pad  # in-block row of key u
        keep = (pos >= 0) & (pos <= a) if tri == "lower" else (pos >= a) & (pos < p)
        mats = mats + base[:, None, None] * keep
    return mats


def _banded(xpad: Tensor, mats: Tensor, carry: Tensor, n_blocks: int) -> Tensor:
    """out[i P + a] = carry[i] + sum_u mats[h, a, u] xpad[i P + u], block by block.

    xpad [B, H, >= nB P + K - 1, C] (the input, already padded), mats [H, P, W],
    carry [B, H, nB or 1, C] -> [B, H, nB P, C].
    """
    b, h, _, c = xpad.shape
    p, width = mats.shape[-2], mats.shape[-1]
    out = xpad.new_empty(b, h, n_blocks, p, c)
    for i in range(b):
        for j in range(h):
            x = xpad[i, j]
            windows = x.as_strided((n_blocks, width, c), (p * x.stride(0), x.stride(0), 1))
            torch.baddbmm(
                carry[i, j, :, None, :].expand(n_blocks, p, c),
                mats[j].expand(n_blocks, p, width),
                windows,
                out=out[i, j],
            )
    return out.view(b, h, n_blocks * p, c)


def _padded(b: int, h: int, n: int, c: int, left: int, total: int, like: Tensor) -> Tensor:
    """Uninitialised [B, H, total, C] with zero rows before ``left`` and from ``left + n``."""
    buf = like.new_empty(b, h, total, c)
    buf[:, :, :left].zero_()
    buf[:, :, left + n :].zero_()
    return buf


def _block_carry(x: Tensor, base: Tensor, causal: bool, n_blocks: int, reverse: bool) -> Tensor:
    """The global part of every block: base * (total, or causal: sum over earlier blocks;
    ``reverse``: over later blocks). x [B, H, nB P, C] (zero beyond L) -> [B, H, nB or 1, C]."""
    b, h, _, c = x.shape
    if not causal:
        return x.sum(dim=-2, keepdim=True) * base[None, :, None, None]
    sums = x.view(b, h, n_blocks, -1, c).sum(dim=-2)  # [B, H, nB, C]
    if reverse:
        sums = sums.flip(-2)
    carry = sums.cumsum(dim=-2) - sums  # exclusive prefix
    if reverse:
        carry = carry.flip(-2)
    return carry * base[None, :, None, None]


class _ConvCore(torch.autograd.Function):
    """AFT-conv before gating: Y = (G(eV) base + conv(eV)) / (G(e) base + conv(e)).

    G: the total over keys (causal: the prefix sum), conv: the depthwise correlation with the
    head's kernel ``coef`` (out[t] = sum_j coef[j] x[t + j - left_pad]). Numerator and
    denominator run as one [.., 2Dh] tensor; the correlation and the causal prefix sum are block
    matrix products (see :func:`_banded`). The backward is written out: the transpose of the
    correlation is the correlation with the flipped kernel, of the prefix sum the suffix sum.
    ``base`` is a constant (derived from detached maxima).
    """

    @staticmethod
    def forward(ctx, e, v, coef, base, left_pad, causal):
        b, h, n, d = e.shape
        ks = coef.shape[-1]
        nb = -(-n // _BLOCK)
        xpad = _padded(b, h, n, 2 * d, left_pad, nb * _BLOCK + ks - 1, e)
        x = xpad[:, :, left_pad : left_pad + n]
        torch.mul(e, v, out=x[..., :d])
        x[..., d:].copy_(e)
        carry = _block_carry(
            xpad[:, :, left_pad : left_pad + nb * _BLOCK], base, causal, nb, reverse=False
        )
        mats = _band_matrices(coef, base, left_pad, "lower" if causal else None)
        acc = _banded(xpad, mats, carry, nb)[:, :, :n]
        # In place in acc (no further large allocations): den, then y over the numerator.
        den = acc[..., d:].clamp_min_(smallest_normal(acc))
        y = torch.div(acc[..., :d], den, out=acc[..., :d])
        ctx.save_for_backward(xpad, v, coef, base, den, y)
        ctx.left_pad, ctx.causal = left_pad, causal
        return y

    @staticmethod
    def backward(ctx, gy):
        xpad, v, coef, base, den, y = ctx.saved_tensors
        left_pad, causal = ctx.left_pad, ctx.causal
        b, h, n, d = y.shape
        ks = coef.shape[-1]
        nb = -(-n // _BLOCK)
        right_pad = ks - 1 - left_pad  # the transpose's left padding
        gpad = _padded(b, h, n, 2 * d, right_pad, nb * _BLOCK + ks - 1, gy)
        g = gpad[:, :, right_pad : right_pad + n]  # d loss / d [numerator, denominator]
        torch.div(gy, den, out=g[..., :d])
        torch.mul(g[..., :d], y, out=g[..., d:]).neg_()
        g_blocks = gpad[:, :, right_pad : right_pad + nb * _BLOCK]
        carry = _block_carry(g_blocks, base, causal, nb, reverse=True)
        mats = _band_matrices(coef.flip(-1), base, right_pad, "upper" if causal else None)
        gx = _banded(gpad, mats, carry, nb)[:, :, :n]
        g_coef = _kernel_grad(g_blocks, xpad, ks, nb) if ctx.needs_input_grad[2] else None
        e = xpad[:, :, left_pad : left_pad + n, d:]
        g_e = gx[..., d:].addcmul_(gx[..., :d], v)  # in place in gx
        g_v = gx[..., :d].mul_(e)
        return g_e, g_v, g_coef, None, None, None


def _kernel_grad(g: Tensor, xpad: Tensor, ks: int, n_blocks: int) -> Tensor:
    """d loss / d coef[h, j] = sum_{b, t, c} g[t, c] xpad[t + j, c] -> [H, K].

    Per block the [P, P + K - 1] products of output rows with their input window (one batched
    matmul), summed over blocks; coefficient j is the sum over the block's diagonal j.
    """
    b, h, _, c = g.shape
    p = _BLOCK
    width = p + ks - 1
    ones = g.new_ones(1, n_blocks)
    prods = g.new_empty(n_blocks, p, width)
    total = g.new_zeros(h, p, width)
    for i in range(b):
        for j in range(h):
            x = xpad[i, j]
            windows = x.as_strided((n_blocks, width, c), (p * x.stride(0), x.stride(0), 1))
            torch.bmm(g[i, j].view(n_blocks, p, c), windows.transpose(1, 2), out=prods)
            total[j] += (ones @ prods.view(n_blocks, -1)).view(p, width)
    a = torch.arange(p, device=g.device)[:, None]
    diag = a + torch.arange(ks, device=g.device)[None, :]  # [P, K]: window column of (a, j)
    return total.gather(-1, diag.expand(h, p, ks)).sum(dim=-2)
