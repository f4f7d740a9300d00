"""Small pieces shared by the FAVOR+ paths."""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Floor of the key stabiliser (keeps exp finite before any real key; see favor.py).
STAB_FLOOR = -1e4
# The softmax kernels hold their logits in base 2 (times log2 e, folded into the projection)
# and exponentiate with exp2: torch's CPU exp2 kernel is ~4x faster than its exp (22 vs 82 us
# for 262k float32 values), same accuracy up to the rounding of the folded factor, and
# exp2(0) is exactly 1 (see sub_at_row_max).
LOG2E = 1.0 / math.log(2.0)


def inverse_den(den: Tensor) -> Tensor:
    """1 / den as [.., 1], 0 where den = 0 (a row with no real key: out 0, see favor._divide)."""
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
