"""The AFT attention layers: the shared base (gating, dtypes, per-channel matrices) and
AFT-simple, AFT-full, AFT-local (see :mod:`protein_performer.attention.aft`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from protein_performer.attention.aft import decoding
from protein_performer.attention.aft.common import (
    compute_dtype,
    prefix_or_total,
    ratio,
    shift_exp_keys,
)
from protein_performer.attention.aft.scan import causal_prefix_softmax
from protein_performer.attention.base import Attention
from protein_performer.attention.registry import register


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
        dt = compute_dtype(q)
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

    # -- token-by-token decoding (aft/decoding.py): keys in a bias window + the rest

    def decode_window(self) -> int | None:
        """How many of the latest keys carry a bias for the current query (None: all)."""
        return 0

    def decode_bias(self, position: int, n: int) -> Tensor:
        """w [H or 1, n] of the last n keys (positions position-n+1 .. position) for query
        ``position``; keys further back have w = 0."""
        return torch.zeros(1, n, device=self.to_q.weight.device)

    def _init_state(self, batch: int, device: torch.device, dtype: torch.dtype):
        return decoding.aft_init_state(
            batch, self.n_heads, self.head_dim, self.decode_window(), device, dtype
        )

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
        e = shift_exp_keys(k, mask)
        return ratio((e * v).sum(-2, keepdim=True), e.sum(-2, keepdim=True)).expand_as(v)

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
            self.u = nn.Parameter(torch.randn(n, cfg.aft_factor_dim) * cfg.aft_factor_dim**-0.5)
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
        return self._bias_rows(position, position + 1, position + 1)[:, position + 1 - n :]

    def _weighted(self, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        b, h, n, d = k.shape
        e = shift_exp_keys(k, mask)
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
        return ratio(out[..., 0, :], out[..., 1, :])

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
        e = shift_exp_keys(k, mask)
        ev = torch.cat([e * v, e], dim=-1)  # [B, H, L, 2Dh]
        glob = prefix_or_total(ev, self.causal)
        if self.window == 0:
            return ratio(glob[..., :d], glob[..., d:]).expand_as(v)
        band, valid = self._valid(n, k.device)
        band = band.to(k.dtype).masked_fill(~valid, float("-inf"))
        r = band.detach().amax(dim=-1, keepdim=True).clamp_min(0.0)  # [L, 1]
        base = (-r).exp()  # weight of an out-of-window key after the shift
        coef = torch.where(valid, (band - r).exp() - base, torch.zeros_like(band))  # [L, 2s-1]
        return ratio_of(glob * base + self._band(ev, coef), d)

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


def ratio_of(acc: Tensor, d: int) -> Tensor:
    """[..., 2Dh] (numerator | denominator) -> numerator / denominator."""
    return ratio(acc[..., :d], acc[..., d:])
