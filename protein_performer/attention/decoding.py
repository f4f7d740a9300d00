"""Token-by-token (recurrent) decoding of causal attention: one state and one step per kind.

Each ``*_step`` takes the newest token's q, k, v ``[B, H, 1, Dh]`` (rotary already applied),
updates its state in place and returns ``[B, H, 1, Dh]``: row t of the causal forward.

* exact: a KV cache (O(t) memory, O(t) time per token; the price of exact attention).
* FAVOR+ (softmax, ReLU): O(1) state, the causal forward's prefix state carried one token at a
  time (see :mod:`protein_performer.attention.favor`). Softmax: S = sum_j exp(l_j - M) [v_j, 1],
  the eps part separately as Z = sum_j [v_j, 1] (it does not scale with exp(-M)), and the running
  maximum M of the key logits (floored like the forward's); S is rescaled by exp(M_old - M_new)
  when M grows, so query t sees exactly phi_t(k_j) = (exp(l_j - M_t) + eps)/sqrt(m).
* AFT: every kind as keys with a position bias inside a window plus bias 0 outside it. Keys
  that left the window are folded into an O(1) running (max, numerator, denominator) per
  channel; the window's keys are cached: none for aft_simple (O(1)), the last s for aft_local,
  the last K for aft_conv (bounded), all for aft_full.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from protein_performer.attention.numerics import STAB_FLOOR, compute_dtype


@dataclass
class DecodingState:
    """Base of the per-layer states; ``position`` = tokens consumed so far."""

    position: int = 0

    def tensors(self) -> list[Tensor]:
        """The state's tensors (to measure its size)."""
        return [v for v in vars(self).values() if isinstance(v, Tensor)]

    def numel(self) -> int:
        return sum(t.numel() for t in self.tensors())


# ----------------------------------------------------------------------------- KV cache


@dataclass
class KVCache(DecodingState):
    """Keys and values of every past token, ``[B, H, T, Dh]``, in a buffer grown by doubling
    (an append costs O(1) amortised instead of a full copy per token)."""

    k_buf: Tensor | None = None
    v_buf: Tensor | None = None
    length: int = 0

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add k, v [B, H, n, Dh]; returns views of all cached keys and values."""
        n = k.shape[-2]
        if self.k_buf is None or self.length + n > self.k_buf.shape[-2]:
            cap = max(16, 2 * (self.length + n))
            k_new = k.new_empty(k.shape[:2] + (cap, k.shape[-1]))
            v_new = v.new_empty(v.shape[:2] + (cap, v.shape[-1]))
            if self.k_buf is not None:
                k_new[:, :, : self.length] = self.k_buf[:, :, : self.length]
                v_new[:, :, : self.length] = self.v_buf[:, :, : self.length]
            self.k_buf, self.v_buf = k_new, v_new
        self.k_buf[:, :, self.length : self.length + n] = k
        self.v_buf[:, :, self.length : self.length + n] = v
        self.length += n
        return self.k_buf[:, :, : self.length], self.v_buf[:, :, : self.length]


def exact_step(q: Tensor, k: Tensor, v: Tensor, state: KVCache) -> Tensor:
    """softmax(q K^T / sqrt(d)) V over the cached keys (the newest included)."""
    keys, values = state.append(k, v)
    state.position += 1
    scores = (q @ keys.transpose(-1, -2)) * q.shape[-1] ** -0.5  # [B, H, 1, T]
    return scores.softmax(dim=-1) @ values


# ----------------------------------------------------------------------------- FAVOR+


@dataclass
class FavorState(DecodingState):
    """O(1) causal FAVOR+ state of one layer.

    ``s`` [B, H, m, Dv+1]: sum_j g(k_j) [v_j, 1]^T (softmax: g = exp(l_j - M), ReLU: g = phi);
    ``z`` [B, H, 1, Dv+1]: sum_j [v_j, 1] (softmax's eps part); ``run_max`` [B, H, 1, 1]: M.
    """

    s: Tensor = field(default_factory=lambda: torch.empty(0))
    z: Tensor = field(default_factory=lambda: torch.empty(0))
    run_max: Tensor = field(default_factory=lambda: torch.empty(0))


def favor_init_state(
    batch: int, heads: int, nb_features: int, dv: int, device: torch.device, dtype: torch.dtype
) -> FavorState:
    dt = compute_dtype(dtype)
    return FavorState(
        s=torch.zeros(batch, heads, nb_features, dv + 1, device=device, dtype=dt),
        z=torch.zeros(batch, heads, 1, dv + 1, device=device, dtype=dt),
        run_max=torch.full((batch, heads, 1, 1), STAB_FLOOR, device=device, dtype=dt),
    )


def favor_softmax_step(
    q: Tensor, k: Tensor, v: Tensor, projection: Tensor, state: FavorState, *, eps: float
) -> Tensor:
    """One causal FAVOR+ softmax token: q, k, v [B, H, 1, Dh], projection [m, Dh] -> [B, H, 1, Dv].

    The features' common 1/sqrt(m) cancels in the ratio and is left out.
    """
    dt = state.s.dtype
    q, k, v, w = (t.to(dt) for t in (q, k, v, projection))
    d = q.shape[-1]
    v1 = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # [B, H, 1, Dv+1]
    qs, ks = q * d**-0.25, k * d**-0.25
    lq = qs @ w.T  # the query's |q'|^2/2 cancels with its own row maximum
    phi_q = torch.exp(lq - lq.amax(-1, keepdim=True)) + eps  # [B, H, 1, m]
    lk = ks @ w.T - (ks * ks).sum(-1, keepdim=True) / 2  # [B, H, 1, m]
    new_max = torch.maximum(state.run_max, lk.amax(-1, keepdim=True))
    state.s.mul_(torch.exp(state.run_max - new_max))  # older keys re-referenced to M_t
    state.s.add_(torch.exp(lk - new_max).transpose(-1, -2) @ v1)
    state.run_max = new_max
    state.z.add_(v1)
    num = phi_q @ state.s + eps * phi_q.sum(-1, keepdim=True) * state.z
    state.position += 1
    return num[..., :-1] / num[..., -1:]


def favor_generalized_step(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    projection: Tensor,
    state: FavorState,
    *,
    fn: Callable[[Tensor], Tensor],
    eps: float,
) -> Tensor:
    """One causal FAVOR+ token with generalized features f(x W^T / sqrt(m)) + eps (ReLU:
    f = torch.relu); arguments and result as :func:`favor_softmax_step`."""
    dt = state.s.dtype
    q, k, v, w = (t.to(dt) for t in (q, k, v, projection))
    m = w.shape[0]
    v1 = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # [B, H, 1, Dv+1]
    phi_q = fn(q @ w.T * m**-0.5) + eps
    phi_k = fn(k @ w.T * m**-0.5) + eps
    state.s.add_(phi_k.transpose(-1, -2) @ v1)
    num = phi_q @ state.s
    state.position += 1
    return num[..., :-1] / num[..., -1:]


# ----------------------------------------------------------------------------- AFT


@dataclass
class AFTState(DecodingState):
    """Per channel: running max, numerator and denominator of the keys that left the bias
    window (bias 0), ``[B, H, 1, Dh]`` each, and the window's keys and values ``[B, H, n, Dh]``."""

    run_max: Tensor = field(default_factory=lambda: torch.empty(0))
    num: Tensor = field(default_factory=lambda: torch.empty(0))
    den: Tensor = field(default_factory=lambda: torch.empty(0))
    keys: Tensor = field(default_factory=lambda: torch.empty(0))
    values: Tensor = field(default_factory=lambda: torch.empty(0))
    window: int | None = 0  # keys kept with their bias; None = all (aft_full)


def aft_init_state(
    batch: int,
    heads: int,
    head_dim: int,
    window: int | None,
    device: torch.device,
    dtype: torch.dtype,
) -> AFTState:
    dt = compute_dtype(dtype)
    zeros = torch.zeros(batch, heads, 1, head_dim, device=device, dtype=dt)
    empty = zeros[:, :, :0].clone()
    return AFTState(
        run_max=torch.full_like(zeros, STAB_FLOOR),
        num=zeros.clone(),
        den=zeros.clone(),
        keys=empty,
        values=empty.clone(),
        window=window,
    )


def aft_push(state: AFTState, k: Tensor, v: Tensor) -> None:
    """Append the newest key; fold keys beyond the window into the running sums."""
    dt = state.num.dtype
    state.keys = torch.cat([state.keys, k.to(dt)], dim=-2)
    state.values = torch.cat([state.values, v.to(dt)], dim=-2)
    state.position += 1
    if state.window is None or state.keys.shape[-2] <= state.window:
        return
    n_out = state.keys.shape[-2] - state.window
    old_k, old_v = state.keys[:, :, :n_out], state.values[:, :, :n_out]
    new_max = torch.maximum(state.run_max, old_k.amax(-2, keepdim=True))
    scale = torch.exp(state.run_max - new_max)
    e = torch.exp(old_k - new_max)
    state.num = state.num * scale + (e * old_v).sum(-2, keepdim=True)
    state.den = state.den * scale + e.sum(-2, keepdim=True)
    state.run_max = new_max
    state.keys, state.values = state.keys[:, :, n_out:], state.values[:, :, n_out:]


def aft_step(q: Tensor, k: Tensor, v: Tensor, state: AFTState, bias: Tensor) -> Tensor:
    """sigmoid(q) * sum exp(K + w) V / sum exp(K + w) over all keys so far.

    ``bias`` [H or 1, n]: w of the n cached keys (oldest first) for the current query; call
    after :func:`aft_push`. Keys outside the cache have w = 0 (the running sums).
    """
    dt = state.num.dtype
    if state.keys.shape[-2] == 0:  # aft_simple: the running sums are everything
        return torch.sigmoid(q.to(dt)) * (state.num / state.den)
    logits = state.keys + bias.to(dt)[None, :, :, None]  # [B, H, n, Dh]
    top = torch.maximum(state.run_max, logits.amax(-2, keepdim=True))
    e = torch.exp(logits - top)
    scale = torch.exp(state.run_max - top)
    num = state.num * scale + (e * state.values).sum(-2, keepdim=True)
    den = state.den * scale + e.sum(-2, keepdim=True)
    return torch.sigmoid(q.to(dt)) * (num / den)
