"""Token-by-token decoding of causal FAVOR+ (softmax, ReLU): O(1) state per layer.

The causal forward's prefix state is carried one token at a time (see
:mod:`protein_performer.attention.favor`). Each ``*_step`` takes the newest token's q, k, v
``[B, H, 1, Dh]`` (rotary already applied), updates its state in place and returns
``[B, H, 1, Dh]``: row t of the causal forward. Softmax: S = sum_j exp(l_j - M) [v_j, 1], the
eps part separately as Z = sum_j [v_j, 1] (it does not scale with exp(-M)), and the running
maximum M of the key logits (floored like the forward's); S is rescaled by exp(M_old - M_new)
when M grows, so query t sees exactly phi_t(k_j) = (exp(l_j - M_t) + eps)/sqrt(m).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from protein_performer.attention.base import DecodingState
from protein_performer.attention.numerics import STAB_FLOOR, compute_dtype


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


def _with_ones(v: Tensor) -> Tensor:
    return torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # [B, H, n, Dv+1]


def _softmax_terms(
    q: Tensor, k: Tensor, v: Tensor, projection: Tensor, state: FavorState, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """In the state's dtype: phi(q) [B, H, n, m] (the query's |q'|^2/2 cancels with its own
    row maximum), the key logits l [B, H, n, m] and [v, 1] [B, H, n, Dv+1]."""
    dt = state.s.dtype
    q, k, v, w = (t.to(dt) for t in (q, k, v, projection))
    d = q.shape[-1]
    qs, ks = q * d**-0.25, k * d**-0.25
    lq = qs @ w.T
    phi_q = torch.exp(lq - lq.amax(-1, keepdim=True)) + eps
    lk = ks @ w.T - (ks * ks).sum(-1, keepdim=True) / 2
    return phi_q, lk, _with_ones(v)


def _generalized_terms(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    projection: Tensor,
    state: FavorState,
    fn: Callable[[Tensor], Tensor],
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """In the state's dtype: phi(q), phi(k) [B, H, n, m] (f(x W^T / sqrt(m)) + eps) and
    [v, 1] [B, H, n, Dv+1]."""
    dt = state.s.dtype
    q, k, v, w = (t.to(dt) for t in (q, k, v, projection))
    m = w.shape[0]
    return fn(q @ w.T * m**-0.5) + eps, fn(k @ w.T * m**-0.5) + eps, _with_ones(v)


def favor_softmax_step(
    q: Tensor, k: Tensor, v: Tensor, projection: Tensor, state: FavorState, *, eps: float
) -> Tensor:
    """One causal FAVOR+ softmax token: q, k, v [B, H, 1, Dh], projection [m, Dh] -> [B, H, 1, Dv].

    The features' common 1/sqrt(m) cancels in the ratio and is left out.
    """
    phi_q, lk, v1 = _softmax_terms(q, k, v, projection, state, eps)
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
    phi_q, phi_k, v1 = _generalized_terms(q, k, v, projection, state, fn, eps)
    state.s.add_(phi_k.transpose(-1, -2) @ v1)
    num = phi_q @ state.s
    state.position += 1
    return num[..., :-1] / num[..., -1:]


def _causal_tril(n: int, device: torch.device) -> Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def favor_softmax_suffix(
    q: Tensor, k: Tensor, v: Tensor, projection: Tensor, state: FavorState, *, eps: float
) -> Tensor:
    """n causal FAVOR+ softmax tokens after the prefix in ``state`` at once: q, k, v
    [B, H, n, Dh] -> [B, H, n, Dv], the outputs :func:`favor_softmax_step` would give token by
    token (``state`` untouched). Query t sees the prefix sums re-referenced to its running
    maximum M_t, and the suffix keys j <= t through an [n, n] matrix."""
    phi_q, lk, v1 = _softmax_terms(q, k, v, projection, state, eps)
    key_max = lk.amax(-1, keepdim=True)  # [B, H, n, 1]
    run_max = torch.maximum(state.run_max, torch.cummax(key_max, dim=-2).values)  # M_t
    num = (phi_q @ state.s) * torch.exp(state.run_max - run_max)
    num = num + eps * phi_q.sum(-1, keepdim=True) * (state.z + v1.cumsum(-2))
    # scores[t, j] = phi_q_t . exp(l_j - M_t) = (phi_q_t . exp(l_j - c_j)) exp(c_j - M_t)
    rescale = torch.exp((key_max.transpose(-1, -2) - run_max).clamp_max(0.0))  # [B, H, n, n]
    scores = (phi_q @ torch.exp(lk - key_max).transpose(-1, -2)) * rescale
    scores = scores.masked_fill(~_causal_tril(q.shape[-2], q.device), 0.0)
    num = num + scores @ v1
    return num[..., :-1] / num[..., -1:]


def favor_generalized_suffix(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    projection: Tensor,
    state: FavorState,
    *,
    fn: Callable[[Tensor], Tensor],
    eps: float,
) -> Tensor:
    """n causal tokens with generalized features after the prefix in ``state`` at once;
    arguments and result as :func:`favor_softmax_suffix` (the steps of
    :func:`favor_generalized_step`)."""
    phi_q, phi_k, v1 = _generalized_terms(q, k, v, projection, state, fn, eps)
    scores = (phi_q @ phi_k.transpose(-1, -2)).masked_fill(
        ~_causal_tril(q.shape[-2], q.device), 0.0
    )
    num = phi_q @ state.s + scores @ v1
    return num[..., :-1] / num[..., -1:]
