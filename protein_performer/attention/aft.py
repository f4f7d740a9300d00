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

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

from protein_performer.attention import decoding
from protein_performer.attention.base import Attention
from protein_performer.attention.favor_common import LOG2E, STAB_FLOOR
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


# Rows per chunk of the causal AFT-simple scan: fewer chunks cost less Python overhead, smaller
# ones keep the cumsum's [C, Dh] planes in cache. Measured on CPU (B 1, H 8, Dh 64, float32,
# L 8192 and 32768): 192-384 within noise, 128 5-25% slower, 64 ~40% slower.
SCAN_CHUNK = 256


def causal_prefix_softmax(k: Tensor, v: Tensor, mask: Tensor | None,
                          chunk: int | None = None) -> Tensor:
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


def _scan_forward(k: Tensor, v: Tensor, mask: Tensor | None, chunk: int,
                  keep: bool) -> tuple[Tensor, Tensor | None, list[Tensor]]:
    """y; with ``keep`` also 1 / D per row (0 where D <= tiny) and the running maxima (base 2,
    [B, H, 1, Dh]) of the chunks. Numerator and denominator are two planes of one buffer
    [B, H, 2, C, Dh], scanned by one cumsum."""
    b, h, n, d = k.shape
    bias, tiny = _key_bias(mask, k), _tiny(k)
    y = torch.empty_like(v)
    inv = k.new_empty(b, h, n, d) if keep else None
    x = k.new_empty(b, h, min(chunk, n), d)  # base-2 logits; 1 / D when not kept
    acc = k.new_empty(b, h, 2, min(chunk, n), d)
    maxima: list[Tensor] = []
    m = torch.full((), STAB_FLOOR * LOG2E, dtype=k.dtype, device=k.device)
    carry = None  # the earlier chunks' last [N | D] row, set at the end of each chunk
    for s0, s1 in _spans(n, chunk):
        xc, ac = x[:, :, :s1 - s0], acc[:, :, :, :s1 - s0]
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


def _scan_backward(gy: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, y: Tensor,
                   inv: Tensor, maxima: list[Tensor], chunk: int) -> tuple[Tensor, Tensor]:
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
        e, g = x[:, :, :s1 - s0], acc[:, :, :, :s1 - s0]
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


# ----------------------------------------------------------------------------- base class


class AFTAttention(Attention):
    """Shared parts of the AFT kinds: gating, dtype handling, per-channel attention matrices.

    Subclasses implement :meth:`_weighted` (the per-channel weighted average of V, before
    gating) and :meth:`bias_matrix` (the dense [H or 1, L, L] bias w, for analysis/tests).
    """

    # Per-channel sums and banded/conv corrections: O(L d) memory (AFT-full overrides).
    linear_memory = True

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

    # -- token-by-token decoding (attention/decoding.py): keys in a bias window + the rest

    def decode_window(self) -> int | None:
        """How many of the latest keys carry a bias for the current query (None: all)."""
        return 0

    def decode_bias(self, position: int, n: int) -> Tensor:
        """w [H or 1, n] of the last n keys (positions position-n+1 .. position) for query
        ``position``; keys further back have w = 0."""
        return torch.zeros(1, n, device=self.to_q.weight.device)

    def _init_state(self, batch: int, device: torch.device, dtype: torch.dtype):
        return decoding.aft_init_state(batch, self.n_heads, self.head_dim, self.decode_window(),
                                       device, dtype)

    def decode(self, q: Tensor, k: Tensor, v: Tensor, state) -> Tensor:
        self.check_length(state.position + 1)
        decoding.aft_push(state, k, v)
        bias = self.decode_bias(state.position - 1, state.keys.shape[-2])
        return decoding.aft_step(q, k, v, state, bias)


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
    linear_memory = False  # [row_chunk, L] bias blocks
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

    def decode_window(self) -> int | None:
        return None

    def decode_bias(self, position: int, n: int) -> Tensor:
        return self._bias_rows(position, position + 1, position + 1)[:, position + 1 - n:]

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
        self.window = s = cfg.aft_window
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

    def decode_window(self) -> int | None:
        return self.window

    def decode_bias(self, position: int, n: int) -> Tensor:
        # causal offsets -(n-1)..0 sit in band columns s-n .. s-1
        return self.w[position, self.window - n : self.window][None]

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
