"""Attention Free Transformer variants (Zhai et al., 2021): AFT-full, -local, -simple, -conv.

Every channel c of every head is an independent weighted average over keys::

    Y_t = sigmoid(Q_t) * sum_t' exp(K_t' + w_tt') V_t' / sum_t' exp(K_t' + w_tt')

with a position bias ``w`` that each variant parameterises differently:

* ``aft_full``:   w = u_t . v_t' (u, v: [max_length, aft_factor_dim]; u random, v zero, so
  w starts at 0), or with ``aft_full_bias`` a full learned [max_length, max_length] table.
  Shared by all heads and channels. Computed as exp(w) matrix products over row chunks.
* ``aft_local``:  a learned w_tt' for |t - t'| < aft_window, stored as a band table
  [max_length, 2 * aft_window - 1] (w[t, o + s - 1] = w_{t, t+o}); 0 outside the window (not
  -inf: outside keys keep weight exp(K)). Global sums + a banded correction computed as block
  matrix products: O(L s d) time, memory linear in L.
* ``aft_simple``: no bias. Bidirectional: a softmax over keys per channel. Causal: a prefix
  softmax, computed as a chunked scan with a running maximum (O(L d) memory).
* ``aft_conv``:   per head a learned kernel of ``aft_conv_kernel`` relative offsets (centred;
  causal: offsets -(K-1)..0), 0 outside; global sums + a depthwise conv of exp(w) - 1.

Causal variants use keys t' <= t. Padded keys (mask False) get exp(K) = 0. Stabilisation:
K is shifted by its per-channel maximum over real keys (aft_simple causal: by a running maximum
per chunk) and w by its per-row maximum (clamped at >= 0 where 0-bias keys exist); both shifts
cancel in the ratio. The maxima are detached (the result does not depend on them).
Denominators are clamped at the smallest normal float, so a row without visible real keys (or,
in causal aft_full/local/conv, whose visible keys all lie ~80 below the channel's later maximum
in float32) gives 0, never NaN. Under autocast everything runs in float32.
Known float32 limit of the global-sum + correction form (local, conv): a strongly negative
in-window bias (w << 0) on a key that dominates the global sum cancels it, losing relative
precision in that row (a few % at |w| ~ 200 with K spread ~ 100 nats); realistic ranges are fine.

``attend_matrix`` returns, per head, the average over the head's Dh channels of the per-channel
weight matrices A^c[t, t'] = exp(K_t'^c + w_tt') / sum_t'' exp(K_t''^c + w_tt''); rows sum to 1.
The per-channel matrices (:meth:`AFTAttention.attend_matrix_per_channel`, [B, H, Dh, L, L])
reproduce the output before gating: Y_t^c / sigmoid(Q_t^c) = sum_t' A^c[t, t'] V_t'^c.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from protein_performer.attention.base import Attention
from protein_performer.attention.registry import register


# ----------------------------------------------------------------------------- helpers


def _compute_dtype(t: Tensor) -> torch.dtype:
    """float64 stays float64 (tests); everything else accumulates in float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _tiny(t: Tensor) -> float:
    return torch.finfo(t.dtype).tiny


def _key_mask(mask: Tensor | None) -> Tensor | None:
    """[B, L] -> [B, 1, L, 1] broadcastable over heads and channels."""
    return None if mask is None else mask[:, None, :, None]


def _shift_exp_keys(k: Tensor, mask: Tensor | None) -> Tensor:
    """exp(K - max_real_keys K) per channel, 0 on padded keys. k [B, H, L, Dh]."""
    km = _key_mask(mask)
    masked = k if km is None else k.masked_fill(~km, float("-inf"))
    m = masked.detach().amax(dim=-2, keepdim=True)  # [B, H, 1, Dh]
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # all keys padded
    # masked_fill(-inf) before exp: padded entries give exp = 0 and zero gradient (no inf * 0).
    x = k - m
    if km is not None:
        x = x.masked_fill(~km, float("-inf"))
    return x.exp_()  # in place: x is a fresh temporary


def _prefix_or_total(x: Tensor, causal: bool) -> Tensor:
    """Sum over keys (dim -2): prefix sums when causal, else the total broadcast to all rows."""
    return x.cumsum(dim=-2) if causal else x.sum(dim=-2, keepdim=True)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    return num / den.clamp_min(_tiny(den))


def causal_prefix_softmax(k: Tensor, v: Tensor, mask: Tensor | None,
                          chunk: int | None = None) -> Tensor:
    """sum_{t'<=t} exp(K_t') V_t' / sum_{t'<=t} exp(K_t') per channel, stably, O(L d) memory.

    k, v [B, H, L, Dh]. Chunked scan: every chunk c is referenced to the running maximum M_c of
    the keys up to its end (non-decreasing in c); in-chunk terms are cumulative sums, the
    earlier chunks enter through their totals rescaled by exp(M_j - M_c) <= 1. Rows underflow
    only if all their visible keys lie ~80 (float32) below a later key of the same chunk.
    The chunk length defaults to ~sqrt(L), so the [nC, nC] carry matrix is O(L) per channel.
    """
    b, h, n, d = k.shape
    if chunk is None:
        chunk = max(16, 1 << math.ceil(math.log2(max(1.0, math.sqrt(n)))))
    nc = -(-n // chunk)
    pad = nc * chunk - n
    km = _key_mask(mask)
    if km is None:
        km = torch.ones(1, 1, n, 1, dtype=torch.bool, device=k.device)
    if pad:
        k = F.pad(k, (0, 0, 0, pad))
        v = F.pad(v, (0, 0, 0, pad))
        km = F.pad(km, (0, 0, 0, pad), value=False)
    kc = k.view(b, h, nc, chunk, d)
    vc = v.view(b, h, nc, chunk, d)
    kmc = km.view(km.shape[0], 1, nc, chunk, 1)
    with torch.no_grad():
        cm = kc.masked_fill(~kmc, float("-inf")).amax(dim=-2)  # [B, H, nC, Dh]
        big = cm.cummax(dim=-2).values  # running max M_c at each chunk's end
        big = torch.where(torch.isfinite(big), big, torch.zeros_like(big))
    x = (kc - big[..., None, :]).masked_fill(~kmc, float("-inf"))
    e = x.exp()  # [B, H, nC, C, Dh], <= 1
    ev = torch.cat([e * vc, e], dim=-1)  # numerator and denominator together
    inner = ev.cumsum(dim=-2)  # in-chunk prefix sums, referenced to M_c
    totals = inner[..., -1, :]  # [B, H, nC, 2Dh]
    # carry_c = sum_{j<c} totals_j * exp(M_j - M_c): an [nC, nC] lower-triangular rescaling.
    with torch.no_grad():
        diff = big[..., None, :, :] - big[..., :, None, :]  # [B, H, c, j, Dh] = M_j - M_c
        strict = torch.ones(nc, nc, dtype=torch.bool, device=k.device).tril(-1)
        scale = diff.masked_fill(~strict[:, :, None], float("-inf")).exp()
    carry = torch.cat([torch.einsum("bhcjd,bhjd->bhcd", scale, totals[..., :d]),
                       torch.einsum("bhcjd,bhjd->bhcd", scale, totals[..., d:])], dim=-1)
    acc = inner + carry[..., None, :]
    acc = acc.reshape(b, h, nc * chunk, 2 * d)[:, :, :n]
    return _ratio(acc[..., :d], acc[..., d:])


# ----------------------------------------------------------------------------- base class


class AFTAttention(Attention):
    """Shared parts of the AFT kinds: gating, dtype handling, per-channel attention matrices.

    Subclasses implement :meth:`_weighted` (the per-channel weighted average of V, before
    gating) and :meth:`bias_matrix` (the dense [H or 1, L, L] bias w, for analysis/tests).
    """

    #: Whether the learned biases fix a maximum length (tables of max_length rows).
    length_limited: bool = False

    def check_length(self, length: int) -> None:
        if self.length_limited and length > self.cfg.max_length:
            raise ValueError(
                f"{self.cfg.kind}: sequence length {length} exceeds attention.max_length="
                f"{self.cfg.max_length}, the size of its learned position-bias tables; raise "
                f"model.max_length (it sets attention.max_length) or use aft_simple/aft_conv, "
                f"which have no length limit"
            )

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        self.check_length(q.shape[-2])
        dt = _compute_dtype(q)
        with torch.autocast(device_type=q.device.type, enabled=False):
            q32, k32, v32 = q.to(dt), k.to(dt), v.to(dt)
            out = torch.sigmoid(q32) * self._weighted(k32, v32, mask)
        return out.to(q.dtype)

    def _weighted(self, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        raise NotImplementedError

    def bias_matrix(self, length: int) -> Tensor:
        """Dense bias w [H or 1, L, L] (0 where the variant has none; causality not applied)."""
        raise NotImplementedError

    def attend_matrix_per_channel(self, q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
        """[B, H, Dh, L, L] per-channel weights exp(K_t' + w_tt') / sum (rows sum to 1).

        Dense: for analysis on short sequences only.
        """
        n = k.shape[-2]
        self.check_length(n)
        dt = torch.float64 if k.dtype == torch.float64 else torch.float32
        w = self.bias_matrix(n).to(dt)  # [H or 1, L, L]
        scores = k.to(dt).transpose(-1, -2)[..., None, :] + w[None, :, None]  # [B,H,Dh,L,L]
        allowed = torch.ones(n, n, dtype=torch.bool, device=k.device)
        if self.causal:
            allowed = allowed.tril()
        allowed = allowed[None, None, None]
        if mask is not None:
            allowed = allowed & mask[:, None, None, None, :]
        scores = scores.masked_fill(~allowed, float("-inf"))
        return scores.softmax(dim=-1).nan_to_num(0.0)  # rows without real keys -> 0

    def attend_matrix(self, q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
        """[B, H, L, L]: the per-channel weight matrices averaged over each head's channels."""
        return self.attend_matrix_per_channel(q, k, mask).mean(dim=2)


# ----------------------------------------------------------------------------- AFT-simple


@register("aft_simple")
class AFTSimple(AFTAttention):
    """AFT-simple (w = 0): softmax over keys per channel; causal as a stable prefix softmax."""

    def _weighted(self, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        if self.causal:
            return causal_prefix_softmax(k, v, mask)
        e = _shift_exp_keys(k, mask)
        return _ratio((e * v).sum(-2, keepdim=True), e.sum(-2, keepdim=True)).expand_as(v)

    def bias_matrix(self, length: int) -> Tensor:
        return torch.zeros(1, length, length, device=self.to_q.weight.device)


# ----------------------------------------------------------------------------- AFT-full


@register("aft_full")
class AFTFull(AFTAttention):
    """AFT-full: w = u v^T (rank aft_factor_dim) or a full learned table; shared by all heads.

    Computed over query-row chunks of ``row_chunk`` rows: for each chunk the [C, L] bias block
    is formed, exp(w - rowmax) multiplies exp(K - max) * V and exp(K - max) (all heads and
    channels in one matmul). When gradients are needed and there is more than one chunk, each
    chunk is checkpointed, so peak memory is O(C L + L B H Dh) rather than L x L.
    """

    length_limited = True
    row_chunk: int = 1024

    def __init__(self, cfg, d_model: int, n_heads: int) -> None:
        super().__init__(cfg, d_model, n_heads)
        n = cfg.max_length
        if cfg.aft_full_bias:
            self.w = nn.Parameter(torch.zeros(n, n))
            self.u = self.v = None
        else:
            self.w = None
            # u random, v zero: w = u v^T = 0 at init (the layer starts as AFT-simple) while
            # both factors get gradients (u = v = 0 would be a saddle point).
            self.u = nn.Parameter(torch.randn(n, cfg.aft_factor_dim) * cfg.aft_factor_dim ** -0.5)
            self.v = nn.Parameter(torch.zeros(n, cfg.aft_factor_dim))

    def _bias_rows(self, start: int, stop: int, length: int) -> Tensor:
        if self.w is not None:
            return self.w[start:stop, :length]
        return self.u[start:stop] @ self.v[:length].T

    def bias_matrix(self, length: int) -> Tensor:
        return self._bias_rows(0, length, length)[None]

    def _weighted(self, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        b, h, n, d = k.shape
        e = _shift_exp_keys(k, mask)
        # [L, 2 * B * H * Dh]: one matmul serves numerator and denominator of every channel.
        rhs = torch.cat([e * v, e], dim=-1).permute(2, 0, 1, 3).reshape(n, -1)
        use_ckpt = torch.is_grad_enabled() and n > self.row_chunk
        outs = []
        for start in range(0, n, self.row_chunk):
            stop = min(n, start + self.row_chunk)
            if use_ckpt:
                o = checkpoint(self._chunk, start, stop, rhs, use_reentrant=False)
            else:
                o = self._chunk(start, stop, rhs)
            outs.append(o)
        out = torch.cat(outs, dim=0).view(n, b, h, 2, d)
        out = out.permute(1, 2, 0, 3, 4)  # [B, H, L, 2, Dh]
        return _ratio(out[..., 0, :], out[..., 1, :])

    def _chunk(self, start: int, stop: int, rhs: Tensor) -> Tensor:
        n = rhs.shape[0]
        w = self._bias_rows(start, stop, n).to(rhs.dtype)  # [C, L]
        if self.causal:
            rows = torch.arange(start, stop, device=rhs.device)[:, None]
            cols = torch.arange(n, device=rhs.device)[None, :]
            w = w.masked_fill(cols > rows, float("-inf"))
        r = w.detach().amax(dim=-1, keepdim=True)  # finite: the diagonal is always allowed
        return (w - r).exp() @ rhs  # [C, 2 * B * H * Dh]


# ----------------------------------------------------------------------------- AFT-local


@register("aft_local")
class AFTLocal(AFTAttention):
    """AFT-local: learned w_{t,t'} for |t - t'| < s (band table [max_length, 2s - 1]), 0 outside.

    Y = sigmoid(Q) * (G exp(-r) + sum_o c_o * S_o(eV)) / (same with e), where G are the global
    (causal: prefix) sums of e = exp(K - max) and e V, S_o shifts keys by offset o, c_o[t] =
    exp(w_{t,t+o} - r_t) - exp(-r_t) and r_t = max(0, max_o w_{t,t+o}) stabilises the row.
    The band is computed as block matrix products (rows in blocks of s against the 3s keys
    around them): O(L s d) time on BLAS, memory linear in L.
    """

    length_limited = True

    def __init__(self, cfg, d_model: int, n_heads: int) -> None:
        super().__init__(cfg, d_model, n_heads)
        s = cfg.aft_window
        self.window = s
        # Zeros: the layer starts as AFT-simple. Unused upper half when causal.
        self.w = nn.Parameter(torch.zeros(cfg.max_length, max(0, 2 * s - 1)))

    def _valid(self, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Band w [L, 2s-1] with -inf on offsets outside [0, L) (or in the future if causal)."""
        s = self.window
        offs = torch.arange(-(s - 1), s, device=device)
        keys = torch.arange(n, device=device)[:, None] + offs[None, :]
        valid = (keys >= 0) & (keys < n)
        if self.causal:
            valid &= offs[None, :] <= 0
        return self.w[:n], valid

    def bias_matrix(self, length: int) -> Tensor:
        dense = torch.zeros(length, length, device=self.w.device, dtype=self.w.dtype)
        if self.window == 0:
            return dense[None]
        band, valid = self._valid(length, self.w.device)
        s = self.window
        rows = torch.arange(length, device=self.w.device)[:, None].expand_as(valid)
        cols = rows + torch.arange(-(s - 1), s, device=self.w.device)[None, :]
        dense = dense.index_put((rows[valid], cols[valid]), band[valid])
        return dense[None]

    def _weighted(self, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        b, h, n, d = k.shape
        e = _shift_exp_keys(k, mask)
        ev = torch.cat([e * v, e], dim=-1)  # [B, H, L, 2Dh]
        glob = _prefix_or_total(ev, self.causal)
        if self.window == 0:
            return _ratio(glob[..., :d], glob[..., d:]).expand_as(v)
        s = self.window
        band, valid = self._valid(n, k.device)
        band = band.to(k.dtype).masked_fill(~valid, float("-inf"))
        r = band.detach().amax(dim=-1, keepdim=True).clamp_min(0.0)  # [L, 1]
        base = (-r).exp()  # weight of an out-of-window key after the shift
        coef = torch.where(valid, (band - r).exp() - base, torch.zeros_like(band))  # [L, 2s-1]
        return _ratio_of(glob * base + self._band(ev, coef), d)

    def _band(self, ev: Tensor, coef: Tensor) -> Tensor:
        """sum_o coef[t, o] * ev[t + o] as block matmuls: rows in blocks of s see 3s keys.

        ev [B, H, L, 2Dh], coef [L, 2s - 1] (0 on invalid offsets) -> [B, H, L, 2Dh].
        Memory: a [L / s, 3s, B H 2Dh] copy of the keys (3x ev) and [L / s, s, 3s] weights.
        """
        b, h, n, dd = ev.shape
        s = self.window
        nb = -(-n // s)
        rhs = ev.permute(2, 0, 1, 3).reshape(n, -1)  # [L, N]
        # Block i (rows i s .. i s + s - 1) sees keys i s - s .. i s + 2s - 1.
        rp = F.pad(rhs, (0, 0, s, s + nb * s - n))  # [(nb + 2) s, N]
        keys = rp.unfold(0, 3 * s, s).transpose(1, 2)  # [nb, 3s, N]
        a = torch.arange(s, device=ev.device)[:, None]
        c = torch.arange(3 * s, device=ev.device)[None, :]
        j = c - a - 1  # band column of (row a, key c): offset o = c - s - a, j = o + s - 1
        inside = (j >= 0) & (j <= 2 * s - 2)
        cp = F.pad(coef, (0, 0, 0, nb * s - n)).view(nb, s, 2 * s - 1)
        blocks = cp.gather(-1, j.clamp(0, 2 * s - 2).expand(nb, s, 3 * s)) * inside
        out = torch.bmm(blocks, keys).reshape(nb * s, -1)[:n]  # [L, N]
        return out.view(n, b, h, dd).permute(1, 2, 0, 3)


def _ratio_of(acc: Tensor, d: int) -> Tensor:
    """[..., 2Dh] (numerator | denominator) -> numerator / denominator."""
    return _ratio(acc[..., :d], acc[..., d:])


# ----------------------------------------------------------------------------- AFT-conv


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

    def bias_matrix(self, length: int) -> Tensor:
        t = torch.arange(length, device=self.kernel.device)
        j = t[None, :] - t[:, None] + self.left_pad  # kernel index of (t, t')
        inside = (j >= 0) & (j < self.kernel_size)
        dense = self.kernel[:, j.clamp(0, self.kernel_size - 1)]  # [H, L, L]
        return dense * inside

    def _weighted(self, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        e = _shift_exp_keys(k, mask)
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
            torch.baddbmm(carry[i, j, :, None, :].expand(n_blocks, p, c),
                          mats[j].expand(n_blocks, p, width), windows, out=out[i, j])
    return out.view(b, h, n_blocks * p, c)


def _padded(b: int, h: int, n: int, c: int, left: int, total: int, like: Tensor) -> Tensor:
    """Uninitialised [B, H, total, C] with zero rows before ``left`` and from ``left + n``."""
    buf = like.new_empty(b, h, total, c)
    buf[:, :, :left].zero_()
    buf[:, :, left + n:].zero_()
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
        x = xpad[:, :, left_pad:left_pad + n]
        torch.mul(e, v, out=x[..., :d])
        x[..., d:].copy_(e)
        carry = _block_carry(xpad[:, :, left_pad:left_pad + nb * _BLOCK], base, causal, nb,
                             reverse=False)
        mats = _band_matrices(coef, base, left_pad, "lower" if causal else None)
        acc = _banded(xpad, mats, carry, nb)[:, :, :n]
        # In place in acc (no further large allocations): den, then y over the numerator.
        den = acc[..., d:].clamp_min_(_tiny(acc))
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
        g = gpad[:, :, right_pad:right_pad + n]  # d loss / d [numerator, denominator]
        torch.div(gy, den, out=g[..., :d])
        torch.mul(g[..., :d], y, out=g[..., d:]).neg_()
        g_blocks = gpad[:, :, right_pad:right_pad + nb * _BLOCK]
        carry = _block_carry(g_blocks, base, causal, nb, reverse=True)
        mats = _band_matrices(coef.flip(-1), base, right_pad, "upper" if causal else None)
        gx = _banded(gpad, mats, carry, nb)[:, :, :n]
        g_coef = _kernel_grad(g_blocks, xpad, ks, nb) if ctx.needs_input_grad[2] else None
        e = xpad[:, :, left_pad:left_pad + n, d:]
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
