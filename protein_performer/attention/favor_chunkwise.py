"""Chunk-parallel causal FAVOR+ (softmax and ReLU kernels) in plain torch: the GPU-shaped form.

Same function as :mod:`favor_causal` (see :mod:`favor` for the no-lookahead stabiliser and the
cap), without a Python loop over chunks: intra-chunk masked products as batched GEMMs, the
inter-chunk states S_c = sum_{j<c} exp(R_j - R_c) s_j by one [N, N] lower-triangular weight
matrix times the stacked chunk states (every weight <= 1), ReLU by an exclusive cumsum.
Autograd through torch ops; memory O(L (m + C) + N m Dv). Not yet wired into the dispatch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from protein_performer.attention.favor_common import (LOG2E, STAB_FLOOR, feature_projection,
                                                       rescale_cap)


def causal_favor_chunkwise(q: Tensor, k: Tensor, v: Tensor, w: Tensor, mask: Tensor | None,
                           eps: float, chunk: int, softmax: bool) -> Tensor:
    """q, k [BH, L, d], v [BH, L, Dv], w [m, d], mask [BH, L] (True = real) -> [BH, L, Dv]."""
    bh, length, d = q.shape
    dv = v.shape[-1]
    chunk = min(chunk, length)
    n = -(-length // chunk)
    pad = n * chunk - length
    wt = feature_projection(w, d, softmax)  # [d, m]
    v1 = torch.cat([v, v.new_ones(bh, length, 1)], -1)
    if mask is not None:
        v1 = v1 * mask[..., None].to(v.dtype)
    p = q @ wt
    lk = k @ wt
    if softmax:
        e = torch.exp2(p - p.amax(-1, keepdim=True))
        kn = (k * k).sum(-1) * (0.5 * LOG2E * d**-0.5)  # key_norms, out of place (autograd)
        if mask is not None:
            kn = kn.masked_fill(~mask, float("inf"))
        lk = lk - kn[..., None]  # -inf on padded keys
        run = torch.cummax(lk.amax(-1), -1).values.clamp_min(STAB_FLOOR * LOG2E)  # M_i [BH, L]
        ends = (torch.arange(1, n + 1, device=q.device) * chunk - 1).clamp_max(length - 1)
        r = run[:, ends]  # R_c [BH, N]
        r_row = r.repeat_interleave(chunk, 1)[:, :length]
        f = torch.exp2((r_row - run).clamp_max(rescale_cap(q.dtype)))[..., None]
        g = torch.exp2(lk - r_row[..., None])
    else:
        e = torch.relu(p)
        g = torch.relu(lk) + eps
        if mask is not None:
            g = g * mask[..., None].to(g.dtype)
    phi = e + eps
    padn = (lambda t: torch.nn.functional.pad(t, (0, 0, 0, pad)).view(bh, n, chunk, t.shape[-1]))
    pc, gc, vc = padn(phi), padn(g), padn(v1)
    states = gc.transpose(-1, -2) @ vc  # [BH, N, m, Dv+1]
    if softmax:
        diff = r[:, None, :] - r[:, :, None]  # R_j - R_c [BH, c, j]
        low = torch.ones(n, n, dtype=torch.bool, device=q.device).tril(-1)
        weights = torch.exp2(diff.masked_fill(~low, float("-inf")))
        prefix = (weights @ states.reshape(bh, n, -1)).view_as(states)
    else:
        prefix = torch.cat([torch.zeros_like(states[:, :1]), states[:, :-1].cumsum(1)], 1)
    scores = (pc @ gc.transpose(-1, -2)).tril()
    num = (pc @ prefix + scores @ vc).reshape(bh, n * chunk, dv + 1)[:, :length]
    if softmax:
        num = f * num + eps * phi.sum(-1, keepdim=True) * v1.cumsum(1)
    den = num[..., -1:]
    return num[..., :-1] / torch.where(den > 0, den, torch.ones_like(den))
