"""Small pieces shared by the FAVOR+ paths."""

from __future__ import annotations

import torch
from torch import Tensor

from protein_performer.attention.numerics import LOG2E


def inverse_den(den: Tensor) -> Tensor:
    """1 / den as [.., 1], 0 where den = 0.

    A row with no real key gives out 0 (see favor.layer._divide).
    """
    return den.reciprocal().masked_fill_(den <= 0, 0.0)[..., None]


def ratio_grads(g_out: Tensor, out: Tensor, inv: Tensor, gn: Tensor) -> Tensor:
    """Gradients of out = num / den with respect to [num, den], written into gn [.., Dv+1]:
    [g_out, -g_out . out] / den, zero on rows with den = 0 (inv from :func:`inverse_den`)."""
    torch.mul(g_out, inv, out=gn[..., :-1])
    torch.mul(torch.linalg.vecdot(g_out, out)[..., None], inv, out=gn[..., -1:]).neg_()
    return gn


def sub_at_row_max(dp: Tensor, e: Tensor, out: Tensor) -> None:
    """dp -= sum_f dp at each row's maximum feature: the gradient through a row-max stabiliser.

    e = exp(p - max_f p) is exactly 1 (exp(0)) at the maximum and below 1 elsewhere, so
    floor(e) marks it without an argmax (torch.max with indices costs 8x an amax); a row with
    tied maxima splits the term between them (a valid subgradient of the max).
    """
    hit = torch.floor(e, out=out)
    dp.addcmul_(hit, dp.sum(-1, keepdim=True) / hit.sum(-1, keepdim=True), value=-1.0)


def add_key_max_grads(g_k: Tensor, k: Tensor, ws: Tensor, g_max: Tensor) -> None:
    """g_k += g_max_j d(max_f l_jf)/dk_j, for the few keys that hold a (running) key maximum.

    l_jf = k_j ws_f - |k_j|^2 d^-1/2 / 2: the gradient is ws_f* - d^-1/2 k_j at the key's
    argmax feature f*, found here for those keys only (g_max is zero elsewhere).
    """
    rows = g_max.nonzero(as_tuple=True)
    if rows[0].numel() == 0:
        return
    kk = k[rows]  # [K, d]
    f_star = (kk @ ws.t()).argmax(-1)
    g_k[rows] += g_max[rows][:, None] * (ws[f_star] - kk * kk.shape[-1] ** -0.5)


def flat_heads(fn, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, *args) -> Tensor:
    """Run fn(q, k, v, *, mask, ...) on [B*H, L, .] tensors (mask repeated per head)."""
    b, h, length, _ = q.shape
    flat = [t.reshape(b * h, length, t.shape[-1]).contiguous() for t in (q, k, v)]
    bmask = None if mask is None else mask.repeat_interleave(h, dim=0)  # [B*H, L]
    return fn(*flat, bmask, *args).view(b, h, length, v.shape[-1])


# The causal kernels' projections and stabiliser pieces (the Python loop and the C++ kernel).


def scaled_projection(w: Tensor, d: int, softmax: bool) -> Tensor:
    """W scaled so that x @ W^T gives the kernel's pre-activation.

    The scale is d^-1/4 (softmax) or m^-1/2 (relu).
    """
    return w * (d**-0.25 if softmax else w.shape[0] ** -0.5)


def feature_projection(w: Tensor, d: int, softmax: bool) -> Tensor:
    """[d, m] (contiguous: bmm copies a transposed one) giving the features' pre-activation;
    softmax logits come out in base 2 (times log2 e) so that the features are exp2 of them
    (torch's CPU exp2 is ~4x faster than its exp)."""
    ws = scaled_projection(w, d, softmax)
    return (ws * LOG2E if softmax else ws).t().contiguous()


def rescale_cap(dtype: torch.dtype) -> float:
    """Largest rescale exponent (base 2) used for a query.

    That is exp(60) in float32, exp(600) in float64.
    """
    return (600.0 if dtype == torch.float64 else 60.0) * LOG2E


def key_norms(k: Tensor, mask: Tensor | None) -> Tensor:
    """|k'|^2/2 log2(e) per key [BH, L]; +inf on padded keys (their features 2^-inf = 0)."""
    # (a norm, not (k * k).sum(-1): no [BH, L, d] temporary, page-faulted in at large L)
    kn = torch.linalg.vector_norm(k, dim=-1).square_().mul_(0.5 * LOG2E * k.shape[-1] ** -0.5)
    if mask is not None:
        kn = kn.masked_fill(~mask, float("inf"))
    return kn
