"""Chunk-parallel causal FAVOR+ (softmax and ReLU kernels) in plain torch: the GPU-shaped form.

Same function as the chunk loop of :mod:`favor.causal` (see the :mod:`favor` package docstring
for the no-lookahead stabiliser and the cap), with no Python loop over chunks: a fixed series
of ~40 batched ops whatever L, so a GPU is not bound by kernel launches. With N = L/C chunks
of C rows:
- intra-chunk: the masked [C, C] products tril(phi(Q_c) G_c^T) [V_c, 1] as one batched GEMM;
- inter-chunk: the chunk states s_c = G_c^T [V_c, 1] [m, Dv+1]; chunk c reads
  S_c = sum_{j<c} exp(R_j - R_c) s_j, made by one [N, N] lower-triangular weight matrix
  times the stacked states (softmax: R is the running key maximum at the chunk ends, non-
  decreasing, so every weight is <= 1 and nothing overflows; no look-ahead, R_c only sees
  keys up to chunk c's end) or an exclusive cumulative sum over chunks (ReLU);
- the key eps of both kernels (which the rescale factor must not reach) as
  eps sum_f phi(q_i)_f * cumsum_j<=i [v_j, 1], and the query eps as column sums, so that
  autograd keeps only the exp2 / relu outputs (one [L, m] tensor for queries, one for keys).

Memory: saved for backward are q, k, v, the query and key features ([L, m] each), the chunk
scores ([L, C]), the states and prefix states ([N, m, Dv+1] each, i.e. L m (Dv+1) / C), the
[N, N] weights and a few per-row vectors: O(L (m + C + d) + N m Dv + N^2). N^2 = L^2 / C^2
stays below L m up to L = m C^2 (4M tokens at m = 256, C = 128). Its GEMM costs
2 N^2 m (Dv+1) FLOPs, half of them on the zero upper triangle; that passes the 2 L m (Dv+1) of
the state GEMM at L = C^2 (16384 at C = 128): a longer L wants a larger chunk.
The gradients are autograd's through these ops (max and cummax save only their indices).
"""

from __future__ import annotations

import torch
from torch import Tensor

from protein_performer.attention.favor.common import (
    feature_projection,
    rescale_cap,
)
from protein_performer.attention.numerics import LOG2E, STAB_FLOOR


def causal_favor_chunkwise(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    w: Tensor,
    mask: Tensor | None,
    eps: float,
    chunk: int,
    softmax: bool,
) -> Tensor:
    """q, k [BH, L, d], v [BH, L, Dv], w [m, d], mask [BH, L] (True = real) -> [BH, L, Dv]."""
    bh, length, d = q.shape
    dv = v.shape[-1]
    m = w.shape[0]
    chunk = min(chunk, length)
    n = -(-length // chunk)
    pad = n * chunk - length
    if pad:  # pad the inputs (not the [L, m] features): padded rows are masked keys
        q, k, v = (torch.nn.functional.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        real = torch.ones(bh, length, dtype=torch.bool, device=q.device) if mask is None else mask
        mask = torch.cat([real, real.new_zeros(bh, pad)], 1)
    wt = feature_projection(w, d, softmax)  # [d, m]
    v1 = torch.cat([v, v.new_ones(bh, n * chunk, 1)], -1)  # [BH, Lp, Dv+1]
    if mask is not None:
        v1 = v1 * mask[..., None].to(v.dtype)
    # In-place ops on fresh [BH, Lp, m] results (a GEMM and max keep no output, exp2 and relu
    # keep their result): one live [L, m] tensor per side, not three.
    p = q @ wt  # [BH, Lp, m]
    if softmax:
        e = p.sub_(p.max(-1, keepdim=True).values).exp2_()
        kn = (k * k).sum(-1) * (0.5 * LOG2E * d**-0.5)  # |k'|^2 / 2, base 2
        if mask is not None:
            kn = kn.masked_fill(~mask, float("inf"))  # padded keys: logits -inf, features 0
        lk = (k @ wt).sub_(kn[..., None])
        run = torch.cummax(lk.max(-1).values, -1).values.clamp_min(STAB_FLOOR * LOG2E)  # M_i
        r = run[:, chunk - 1 :: chunk]  # R_c [BH, N] (padded rows add no key: M stays)
        r_row = r.repeat_interleave(chunk, 1)  # [BH, Lp]
        f = torch.exp2((r_row - run).clamp_max(rescale_cap(q.dtype)))[..., None]
        g = lk.sub_(r_row[..., None]).exp2_()  # key features without eps, <= 1
    else:
        e = p.relu_()
        if mask is not None:
            k = k.masked_fill(~mask[..., None], 0.0)  # relu(0) = 0: padded keys leave
        g = (k @ wt).relu_()
    ec, gc, vc = (t.view(bh, n, chunk, t.shape[-1]) for t in (e, g, v1))  # [BH, N, C, .]
    states = gc.transpose(-1, -2) @ vc  # s_c [BH, N, m, Dv+1]
    if softmax:
        low = torch.ones(n, n, dtype=torch.bool, device=q.device).tril(-1)
        weights = torch.exp2((r[:, None, :] - r[:, :, None]).masked_fill(~low, float("-inf")))
        prefix = (weights @ states.flatten(2)).view_as(states)  # S_c [BH, N, m, Dv+1]
    else:
        prefix = torch.cat([torch.zeros_like(states[:, :1]), states[:, :-1].cumsum(1)], 1)
    # phi(q) = e + eps: the eps row is a column sum of G_c (scores) and of S_c (prefix)
    scores = (ec @ gc.transpose(-1, -2) + eps * gc.sum(-1)[:, :, None, :]).tril()  # [BH, N, C, C]
    num = ec @ prefix + eps * prefix.sum(-2, keepdim=True) + scores @ vc  # [BH, N, C, Dv+1]
    num = num.view(bh, n * chunk, dv + 1)
    if softmax:
        num = f * num
    sum_q = e.sum(-1, keepdim=True) + m * eps  # sum_f phi(q_i)_f
    num = (num + eps * sum_q * v1.cumsum(1))[:, :length]
    den = num[..., -1:]
    # a row with no real key yet has num = 0: out 0 with zero gradient (see favor.layer._divide)
    return num[..., :-1] / torch.where(den > 0, den, torch.ones_like(den))
