"""FAVOR+ linear attention (Choromanski et al., ICLR 2021): functional core and module.

Bidirectional: out = D^-1 (phi(Q) (phi(K)^T V)), D = diag(phi(Q) (phi(K)^T 1)).

Causal, chunk-wise: the sequence is cut into chunks of C tokens. Inside a chunk the masked
quadratic form (phi(Q_c) phi(K_c)^T * tril) V_c is used; between chunks a running [m, d+1]
state S = sum phi(k) [v, 1]^T is carried. All chunks are processed at once with batched
matmuls ([B, H, L/C, C, m]); only the chunk states are scanned (:class:`_CausalChunks`, with a
hand-written backward: a reverse scan over the saved chunk states, [C, C] blocks recomputed),
so memory is O(L (m + d + C) + (L/C) m d), linear in L for forward and backward alike (no
O(L m d) cumulative sum is ever built). The feature maps are autograd Functions too, computed
in place: on CPU a fresh [L, m] tensor costs more in page faults than the arithmetic on it.

Padding: padded keys get zero features and zero values, so they leave both the numerator
and the normaliser (and never set the stabiliser).

Causal softmax stabiliser without lookahead. Query i uses the key features
    phi_i(k_j) = (exp(l_j - M_i) + eps) / sqrt(m),   l_j = w.k_j' - |k_j'|^2/2,
with M_i = max_{j <= i, f} l_jf, the running maximum over real keys up to i (the
bidirectional form uses the maximum over all keys). Since the eps term does not scale
with exp(-M_i), the numerator splits into
    exp(R_c - M_i) * phi(q_i).sum_j exp(l_j - R_c)/sqrt(m) v_j  +  eps/sqrt(m) * sum(phi(q_i)) * sum_{j<=i} v_j,
where R_c is the running maximum at the end of q_i's chunk: keys are exponentiated against
R_c (never overflow), the carried state is rescaled by exp(R_{c-1} - R_c) between chunks, and
the per-query factor exp(R_c - M_i) restores the exact no-lookahead value. For float safety
the factor is capped at exp(60) (float32; exp(600) in float64): only if the key logits jump by
more than 60 within one chunk does query i use max(M_i, R_c - 60), which looks ahead inside
its chunk; any realistic input stays exact.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

import torch
from torch import Tensor, nn

from protein_performer.attention.base import Attention
from protein_performer.attention.kernels import FeatureKernel, resolve_kernel
from protein_performer.attention.random_features import draw_projection, seeded_generator
from protein_performer.attention.registry import register

DEFAULT_CHUNK_SIZE = 128
# Floor of the key stabiliser (keeps exp finite before any real key; see module docstring).
_STAB_FLOOR = -1e4


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Feature maps, states and normaliser always in >= float32 (exp overflows fp16).
    return torch.float64 if dtype == torch.float64 else torch.float32


def favor_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    projection: Tensor,
    *,
    kernel: str | Callable[[Tensor], Tensor] | FeatureKernel = "softmax",
    causal: bool = False,
    mask: Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    eps: float | None = None,
) -> Tensor:
    """FAVOR+ attention. q, k [B, H, L, Dh], v [B, H, L, Dv], projection [m, Dh] -> [B, H, L, Dv].

    ``kernel``: "softmax" (positive random features), "relu" (Performer-ReLU) or a callable f
    for generalized features f(x W^T / sqrt(m)) + eps. ``mask`` [B, L]: True on real tokens;
    padded keys get zero features (they leave numerator and normaliser). ``eps``: None =
    the kernel's paper default (1e-6 softmax, 1e-3 relu). Computed in float32 (float64 for
    float64 inputs) with autocast disabled; returned in v's dtype.
    """
    if q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"expected q, k [B, H, L, Dh] and v [B, H, L, Dv], got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if projection.dim() != 2 or projection.shape[1] != q.shape[-1]:
        raise ValueError(f"projection must be [m, {q.shape[-1]}], got {tuple(projection.shape)}")
    if mask is not None and mask.shape != (q.shape[0], q.shape[2]):
        raise ValueError(f"mask must be [B, L] = {(q.shape[0], q.shape[2])}, got {tuple(mask.shape)}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
    kern = resolve_kernel(kernel)
    eps = kern.default_eps if eps is None else float(eps)
    out_dtype = v.dtype
    dt = _compute_dtype(q.dtype)
    with torch.autocast(device_type=q.device.type, enabled=False):
        q, k, v, w = (t.to(dt) for t in (q, k, v, projection))
        if mask is not None:
            mask = mask.to(torch.bool)
        if causal:
            out = _causal(q, k, v, w, kern, eps, mask, chunk_size)
        else:
            out = _bidirectional(q, k, v, w, kern, eps, mask)
    return out.to(out_dtype)


def _with_ones(v: Tensor, mask: Tensor | None) -> Tensor:
    """[v, 1] [B, H, L, Dv+1], zero on padded keys: one matmul gives numerator and normaliser."""
    v1 = torch.cat([v, v.new_ones(v.shape[:-1] + (1,))], dim=-1)
    if mask is not None:
        v1 = v1 * mask[:, None, :, None].to(v.dtype)
    return v1


def _divide(num: Tensor) -> Tensor:
    """num [..., Dv+1] -> num[..., :Dv] / num[..., Dv]. A query with no real key to attend
    (a padded one, or a causal query before the first real key) has 0 / 0: it gets 0 and a
    zero gradient (``where`` rather than a clamp, whose backward would give 0 * inf)."""
    den = num[..., -1:]
    den = torch.where(den > 0, den, torch.ones_like(den))
    return num[..., :-1] / den


def _features(q, k, w, kern: FeatureKernel, eps: float, mask: Tensor | None, chunk: int,
              need_sum: bool = True):
    """Query features with eps, their row sums, key features without eps, key running max.

    Returns phi_q [B, H, L, m] (= exp(l - rowmax) + eps for softmax, f(.) + eps otherwise),
    sum_q [B, H, L, 1], g_k [B, H, L, m] (exp(l - R_c) for softmax, f(.) otherwise; zero on
    padded keys) and, for softmax, the running key maximum M_i [B, H, L] (else None). The
    common factor 1/m of phi(q).phi(k) is dropped: it cancels in the attention ratio.
    """
    if kern.is_softmax:
        # Only _causal comes here: its _CausalChunks backward makes fresh feature gradients.
        phi_q, sum_q = _SoftmaxQueryFeatures.apply(q, w, eps, need_sum, True)
        g_k, run_max = _SoftmaxKeyFeatures.apply(k, w, mask, chunk, True)
        return phi_q, sum_q, g_k, run_max
    m = w.shape[0]
    if kern.fn is torch.relu:
        phi_q, sum_q = _ReluFeatures.apply(q, w, eps, None)
        g_k, _ = _ReluFeatures.apply(k, w, 0.0, mask)
        return phi_q, sum_q, g_k, None
    wt = w.transpose(-1, -2) * m**-0.5
    phi_q = kern.fn(q @ wt) + eps
    g_k = kern.fn(k @ wt)
    if mask is not None:
        g_k = g_k * mask[:, None, :, None].to(g_k.dtype)
    return phi_q, phi_q.sum(-1, keepdim=True), g_k, None


def _bidirectional(q, k, v, w, kern: FeatureKernel, eps: float, mask: Tensor | None) -> Tensor:
    b, h, length, d = q.shape
    if kern.is_softmax or kern.fn is torch.relu:
        blocked = _BidirectionalSoftmax if kern.is_softmax else _BidirectionalRelu
        flat = [t.reshape(b * h, length, t.shape[-1]).contiguous() for t in (q, k, v)]
        bmask = None if mask is None else mask.repeat_interleave(h, dim=0)  # [B*H, L]
        out = blocked.apply(*flat, w, bmask, eps)
        return out.view(b, h, length, v.shape[-1])
    phi_q, _, g_k, _ = _features(q, k, w, kern, eps, mask, length, need_sum=False)
    v1 = _with_ones(v, mask)  # [B, H, L, Dv+1]
    # phi(K)^T [V, 1] with phi(k) = g_k + eps: the eps part is a rank-one term.
    state = g_k.transpose(-1, -2) @ v1 + eps * v1.sum(-2, keepdim=True)  # [B, H, m, Dv+1]
    return _divide(phi_q @ state)


def _causal(q, k, v, w, kern: FeatureKernel, eps: float, mask: Tensor | None, chunk: int) -> Tensor:
    b, h, length, _ = q.shape
    dv = v.shape[-1]
    m = w.shape[0]
    chunk = min(chunk, length)
    n = -(-length // chunk)  # number of chunks
    padded = n * chunk
    phi_q, sum_q, kg, run_max = _features(q, k, w, kern, eps, mask, chunk)
    v1 = _with_ones(v, mask)  # [B, H, L, Dv+1]

    if run_max is not None:
        ends = (torch.arange(1, n + 1, device=q.device) * chunk - 1).clamp_max(length - 1)
        chunk_max = run_max[..., ends]  # R_c [B, H, N]
        chunk_max_tok = chunk_max.repeat_interleave(chunk, dim=-1)[..., :length]  # [B, H, L]
        limit = 600.0 if q.dtype == torch.float64 else 60.0
        # exp(R_c - M_i), capped (see module docstring)
        rescale = torch.exp(torch.clamp(chunk_max_tok - run_max, max=limit)).unsqueeze(-1)
        carry = torch.exp(chunk_max[..., :-1] - chunk_max[..., 1:])  # [B, H, N-1], <= 1
    else:
        rescale = None
        carry = None

    pad = padded - length
    if pad:
        # Padded positions: zero features and values, so they change nothing.
        qc_src = nn.functional.pad(phi_q, (0, 0, 0, pad))
        kg = nn.functional.pad(kg, (0, 0, 0, pad))
        vc_src = nn.functional.pad(v1, (0, 0, 0, pad))
    else:
        qc_src, vc_src = phi_q, v1
    qc = qc_src.view(b, h, n, chunk, m)
    kc = kg.view(b, h, n, chunk, m)
    vc = vc_src.view(b, h, n, chunk, dv + 1)

    num = _CausalChunks.apply(qc, kc, vc, carry)  # [B, H, N, C, Dv+1]
    num = num.view(b, h, padded, dv + 1)[:, :, :length]
    if rescale is not None:
        num = num * rescale
    # eps part of the key features: eps * sum_f phi(q_i)_f * sum_{j <= i} [v_j, 1]
    num = num + (eps * sum_q) * torch.cumsum(v1, dim=-2)
    return _divide(num)


class _SoftmaxQueryFeatures(torch.autograd.Function):
    """x [B, H, L, d] -> (exp(P - rowmax P) + eps, row sums), P = x d^-1/4 W^T.

    Hand-written so that the [L, m] tensors are made in place (fresh CPU allocations of that
    size cost more than the arithmetic) and only the features are kept for backward. The
    |x'|^2/2 term of the paper's features is constant per row and cancels with the row max.
    """

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, eps: float, need_sum: bool = True,
                grad_private: bool = False):
        # grad_private: the caller guarantees that the incoming gradient of phi is a tensor
        # nobody else holds (e.g. fresh from _CausalChunks), so backward may overwrite it
        # instead of allocating another [L, m] tensor.
        ctx.set_materialize_grads(False)
        ctx.grad_private = grad_private
        wt = w.transpose(-1, -2) * x.shape[-1] ** -0.25  # [d, m]
        p = torch.matmul(x, wt)  # [B, H, L, m]
        if ctx.needs_input_grad[0]:
            mx, idx = p.max(dim=-1, keepdim=True)  # the index is needed for backward only
        else:
            mx, idx = p.amax(dim=-1, keepdim=True), None  # amax is ~10x faster
        phi = p.sub_(mx).exp_().add_(eps)
        row_sum = phi.sum(-1, keepdim=True) if need_sum else phi.new_zeros(phi.shape[:-1] + (1,))
        ctx.eps = eps
        ctx.save_for_backward(wt, phi, idx)
        return phi, row_sum

    @staticmethod
    def backward(ctx, g_phi: Tensor | None, g_sum: Tensor | None):
        wt, phi, idx = ctx.saved_tensors
        if g_phi is None and g_sum is None:
            return None, None, None, None, None
        # d phi / d P = (phi - eps) on the diagonal, minus the same through the row max.
        # gp = (g_phi + g_sum) * (phi - eps), with a single [L, m] allocation (or none).
        eps = ctx.eps
        if g_phi is not None and ctx.grad_private and eps > 0:
            gp = g_phi.add_(g_sum) if g_sum is not None else g_phi
            # t * (phi - eps) in place, without a copy of t: (t - t phi / eps) * -eps
            gp.addcmul_(gp, phi, value=-1.0 / eps).mul_(-eps)
        elif g_phi is None:
            gp = torch.mul(phi, g_sum).sub_(g_sum, alpha=ctx.eps)
        elif g_sum is None:
            gp = torch.mul(g_phi, phi, out=torch.empty_like(phi)).sub_(g_phi, alpha=ctx.eps)
        else:
            gp = torch.add(g_phi, g_sum, out=torch.empty_like(phi)).mul_(phi)
            gp.sub_(g_phi, alpha=ctx.eps).sub_(g_sum, alpha=ctx.eps)
        gp.scatter_add_(-1, idx, -gp.sum(-1, keepdim=True))
        return torch.matmul(gp, wt.transpose(-1, -2)), None, None, None, None


class _SoftmaxKeyFeatures(torch.autograd.Function):
    """x [B, H, L, d] -> (exp(l - R_c), M) with l = x' W^T - |x'|^2/2, x' = x d^-1/4.

    M_i [B, H, L] is the running maximum of l over real keys j <= i (floored at -1e4), R_c
    its value at the end of the chunk of c tokens holding key j (chunk >= L: the maximum
    over the whole sequence). Padded keys (mask False) get zero features.
    """

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, mask: Tensor | None, chunk: int,
                grad_private: bool = False):
        ctx.set_materialize_grads(False)
        ctx.grad_private = grad_private  # as in _SoftmaxQueryFeatures
        b, h, length, d = x.shape
        m = w.shape[0]
        xs = x * d**-0.25
        lg = torch.matmul(xs, w.transpose(-1, -2))  # [B, H, L, m]
        lg.sub_(0.5 * (xs * xs).sum(-1, keepdim=True))
        if mask is not None:
            lg.masked_fill_(~mask[:, None, :, None], float("-inf"))
        row_max = lg.amax(dim=-1)  # [B, H, L]
        run, t_idx = torch.cummax(row_max, dim=-1)
        floored = run < _STAB_FLOOR
        run = run.clamp_min(_STAB_FLOOR)
        n = -(-length // chunk)
        ends = (torch.arange(1, n + 1, device=x.device) * chunk - 1).clamp_max(length - 1)
        stab = run[..., ends].repeat_interleave(chunk, dim=-1)[..., :length]  # R_c per key
        g = lg.sub_(stab.unsqueeze(-1)).exp_()  # padded keys: exp(-inf) = 0
        ctx.chunk, ctx.ends = chunk, ends
        ctx.save_for_backward(xs, w, g, t_idx, floored)
        return g, run

    @staticmethod
    def backward(ctx, g_g: Tensor | None, g_run: Tensor | None):
        xs, w, g, t_idx, floored = ctx.saved_tensors
        if g_g is None and g_run is None:
            return None, None, None, None, None
        b, h, length, m = g.shape
        d = xs.shape[-1]
        if g_g is None:
            gl = torch.zeros_like(g)
            g_run = g_run.clone() if g_run is not None else torch.zeros_like(t_idx, dtype=g.dtype)
        else:
            # d/dl of exp(l - R_c), contiguous (gl.view below)
            if ctx.grad_private and g_g.is_contiguous():
                gl = g_g.mul_(g)
            else:
                gl = torch.mul(g_g, g, out=torch.empty_like(g))
            per_tok = gl.sum(-1)  # [B, H, L]
            chunk = ctx.chunk
            pad = (-length) % chunk
            per_chunk = nn.functional.pad(per_tok, (0, pad)).view(b, h, -1, chunk).sum(-1)
            g_run = torch.zeros_like(per_tok) if g_run is None else g_run.clone()
            # R_c = M at the chunk's last key: its gradient is minus the chunk's total.
            g_run.index_add_(-1, ctx.ends, -per_chunk)
        g_run = g_run.masked_fill(floored, 0.0)
        # Flat index (token, feature) of the element that sets M_i: the running maximum
        # changes at few tokens, so take the feature argmax of those rows only (g is
        # monotone in l within a row).
        # Rows that hold their own running maximum (t_idx[j] == j) are the only ones
        # t_idx refers to; no sort (torch.unique) needed.
        own = (t_idx == torch.arange(length, device=g.device)).view(-1).nonzero().squeeze(1)
        f_all = torch.zeros(b * h * length, dtype=torch.long, device=g.device)
        f_all[own] = g.reshape(b * h * length, m)[own].argmax(-1)
        f_idx = f_all.view(b, h, length).gather(-1, t_idx)  # [B, H, L]
        gl.view(b, h, length * m).scatter_add_(-1, t_idx * m + f_idx, g_run)
        # l = x' W^T - |x'|^2/2
        gxs = torch.matmul(gl, w) - gl.sum(-1, keepdim=True) * xs
        return gxs * d**-0.25, None, None, None, None


class _ReluFeatures(torch.autograd.Function):
    """x [B, H, L, d] -> (relu(x W^T / sqrt(m)) + eps, row sums); zero on padded rows."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, eps: float, mask: Tensor | None):
        ctx.set_materialize_grads(False)
        wt = w.transpose(-1, -2) * w.shape[0] ** -0.5
        phi = torch.matmul(x, wt).relu_()
        if mask is not None:
            phi.mul_(mask[:, None, :, None].to(phi.dtype))
        ctx.save_for_backward(wt, phi)
        if eps:
            phi = phi + eps  # a copy: the saved tensor stays the plain relu
        return phi, phi.sum(-1, keepdim=True)

    @staticmethod
    def backward(ctx, g_phi: Tensor | None, g_sum: Tensor | None):
        wt, relu = ctx.saved_tensors
        if g_phi is None and g_sum is None:
            return None, None, None, None
        if g_phi is None:
            g = g_sum.expand_as(relu)
        else:
            g = g_phi + g_sum if g_sum is not None else g_phi
        # Fused relu gradient: ~4x faster on CPU than building a bool mask + masked_fill_.
        g = torch.ops.aten.threshold_backward(g, relu, 0.0)
        return torch.matmul(g, wt.transpose(-1, -2)), None, None, None


class _CausalChunks(torch.autograd.Function):
    """Y_c = phi(Q_c) P_c + tril(phi(Q_c) phi(K_c)^T) V_c for all chunks c at once.

    qc, kc [B, H, N, C, m], vc [B, H, N, C, E]; P_c = (P_{c-1} + K_{c-1}^T V_{c-1}) * carry_{c-1},
    P_0 = 0 (carry [B, H, N-1] rescales a state to the next chunk's stabiliser; None = 1).
    Keeps only the per-chunk states (O((L/C) m E)) besides the inputs; the [C, C] scores are
    recomputed in backward, whose reverse scan rebuilds the state gradients chunk by chunk.
    Gradients are accumulated in place (batched GEMMs into preallocated outputs).
    """

    @staticmethod
    def forward(ctx, qc: Tensor, kc: Tensor, vc: Tensor, carry: Tensor | None):
        b, h, n, c, m = qc.shape
        e = vc.shape[-1]
        q3, k3, v3 = (t.reshape(b * h * n, c, t.shape[-1]) for t in (qc, kc, vc))
        states = torch.bmm(k3.transpose(1, 2), v3).view(b, h, n, m, e)
        prefix = _exclusive_scan(states, carry)
        scores = torch.bmm(q3, k3.transpose(1, 2)).tril_()  # [BHN, C, C]
        out = torch.bmm(q3, prefix.view(b * h * n, m, e))
        out.baddbmm_(scores, v3)
        del scores
        # Keep one [N, m, E] tensor: inclusive = prefix + states (P_{c+1} = inclusive_c * carry_c).
        inclusive = prefix.add_(states)
        del states
        ctx.save_for_backward(qc, kc, vc, carry, inclusive)
        return out.view(b, h, n, c, e)

    @staticmethod
    def backward(ctx, g_out: Tensor):
        qc, kc, vc, carry, inclusive = ctx.saved_tensors
        b, h, n, c, m = qc.shape
        e = vc.shape[-1]
        bhn = b * h * n
        q3, k3, v3 = (t.reshape(bhn, c, t.shape[-1]) for t in (qc, kc, vc))
        g3 = g_out.reshape(bhn, c, e).contiguous()
        prefix = torch.zeros_like(inclusive)
        prefix[:, :, 1:] = inclusive[:, :, :-1]
        if carry is not None:
            prefix[:, :, 1:] *= carry[..., None, None]
        g_states = torch.bmm(q3.transpose(1, 2), g3).view(b, h, n, m, e)  # g_prefix, for now
        g_carry = _exclusive_scan_backward_(g_states, inclusive, carry)
        gs3 = g_states.view(bhn, m, e)
        # Ordered so that at most one [C, C] block tensor and the [L, m] outputs are alive.
        scores = torch.bmm(q3, k3.transpose(1, 2)).tril_()
        g_v = torch.bmm(scores.transpose(1, 2), g3)
        del scores
        g_v.baddbmm_(k3, gs3)
        g_scores = torch.bmm(g3, v3.transpose(1, 2)).tril_()
        g_q = torch.bmm(g3, prefix.view(bhn, m, e).transpose(1, 2))
        del prefix
        g_q.baddbmm_(g_scores, k3)
        g_k = torch.bmm(g_scores.transpose(1, 2), q3)
        del g_scores
        g_k.baddbmm_(v3, gs3.transpose(1, 2))
        return g_q.view_as(qc), g_k.view_as(kc), g_v.view_as(vc), g_carry


# Rows per block of the blocked bidirectional softmax path: a [B*H, rows, m] block of about
# this many elements (4 MiB in float32, half per core) stays in cache and below glibc's
# mmap threshold, so it is reused rather than page-faulted in afresh.
_BLOCK_ELEMS = 1 << 20


def _block_rows(bh: int, length: int, m: int) -> int:
    return max(64, min(length, _BLOCK_ELEMS // max(1, bh * m)))


class _BidirectionalSoftmax(torch.autograd.Function):
    """Bidirectional FAVOR+ softmax attention, blocked over rows: q, k [BH, L, d], v [BH, L, Dv].

    Never builds an [L, m] tensor: the features of a block of rows are made in a reused
    [BH, rows, m] workspace (fresh CPU allocations of [L, m] cost more in page faults than the
    arithmetic on them) and folded into the [m, Dv+1] state at once; backward recomputes
    them (one more feature GEMM per side, no [L, m] tensors saved). Memory O(L (d + Dv)).

    Same function as the unblocked form: phi(q) = exp(P - rowmax P) + eps, P = q' W^T, and
    key features exp(l - R) + eps, l = k' W^T - |k'|^2/2, R = max over real keys and features
    (floored at -1e4); R is accumulated online (the state is rescaled when the maximum grows).
    """

    @staticmethod
    def forward(ctx, q, k, v, w, mask, eps: float):
        bh, length, d = q.shape
        dv = v.shape[-1]
        m = w.shape[0]
        scale = d**-0.25
        rows = _block_rows(bh, length, m)
        work = q.new_empty(bh * rows * m)
        qs, ks = q * scale, k * scale  # x' = x d^-1/4
        wt = w.t().expand(bh, d, m)
        # Per key: |k'|^2/2, +inf on padded keys so that they get exp(-inf) = 0 features.
        knorm = 0.5 * (ks * ks).sum(-1)
        if mask is not None:
            knorm.masked_fill_(~mask, float("inf"))
        state_v = q.new_zeros(bh, m, dv)  # sum_j g_j v_j^T
        state_1 = q.new_zeros(bh, m)  # sum_j g_j
        big = torch.full((bh,), _STAB_FLOOR, dtype=q.dtype, device=q.device)  # running R
        arg = torch.zeros(bh, dtype=torch.long, device=q.device)  # key holding R
        for s in range(0, length, rows):
            n = min(rows, length - s)
            lg = torch.bmm(ks[:, s:s + n], wt, out=work[: bh * n * m].view(bh, n, m))
            lg.sub_(knorm[:, s:s + n, None])
            row_max = lg.amax(-1)  # [BH, n]
            blk_max, blk_arg = row_max.max(-1)
            grow = blk_max > big
            new = torch.where(grow, blk_max, big)
            arg = torch.where(grow, blk_arg + s, arg)
            rescale = torch.exp(big - new)  # to the new maximum
            state_v.mul_(rescale[:, None, None])
            state_1.mul_(rescale[:, None])
            big = new
            g = lg.sub_(big[:, None, None]).exp_()
            state_v.baddbmm_(g.transpose(1, 2), v[:, s:s + n])
            state_1 += g.sum(-2)
        if mask is not None:
            vm = v * mask[..., None].to(v.dtype)
            cnt = mask.sum(-1).to(v.dtype)
        else:
            vm, cnt = v, torch.full((bh,), float(length), dtype=v.dtype, device=v.device)
        # phi(K)^T [V, 1] with phi(k) = g + eps: the eps part is a rank-one term.
        state_v += eps * vm.sum(-2, keepdim=True)
        state_1 += eps * cnt[:, None]

        # Queries: num = phi(q) state = e state + eps colsum(state), e = exp(P - rowmax).
        need_idx = ctx.needs_input_grad[0]
        out = q.new_empty(bh, length, dv)
        den = q.new_empty(bh, length)
        row_max = q.new_empty(bh, length)
        idx = torch.empty(bh, length, dtype=torch.long, device=q.device) if need_idx else None
        colsum_v = eps * state_v.sum(-2, keepdim=True)  # [BH, 1, Dv]
        colsum_1 = eps * state_1.sum(-1, keepdim=True)  # [BH, 1]
        for s in range(0, length, rows):
            n = min(rows, length - s)
            p = torch.bmm(qs[:, s:s + n], wt, out=work[: bh * n * m].view(bh, n, m))
            if need_idx:  # the argmax is needed for backward only (max is slower than amax)
                mx, ix = p.max(-1, keepdim=True)
                idx[:, s:s + n] = ix[..., 0]
            else:
                mx = p.amax(-1, keepdim=True)
            row_max[:, s:s + n] = mx[..., 0]
            e = p.sub_(mx).exp_()
            num = torch.baddbmm(colsum_v, e, state_v)
            dn = torch.baddbmm(colsum_1[..., None], e, state_1[..., None])  # [BH, n, 1]
            den[:, s:s + n] = dn[..., 0]
            # no real key to attend: 0 / 0 -> 0 (see _divide)
            out[:, s:s + n] = num / torch.where(dn > 0, dn, torch.ones_like(dn))
        ctx.eps = eps
        state = torch.cat([state_v, state_1[..., None]], -1)
        ctx.save_for_backward(qs, ks, v, w, mask, knorm, state, big, arg, row_max, idx, out, den)
        return out

    @staticmethod
    def backward(ctx, g_out):
        qs, ks, v, w, mask, knorm, state, big, arg, row_max, idx, out, den = ctx.saved_tensors
        eps = ctx.eps
        bh, length, d = qs.shape
        dv = v.shape[-1]
        m = w.shape[0]
        scale = d**-0.25
        rows = _block_rows(bh, length, m)
        work = qs.new_empty(2, bh * rows * m)
        wt = w.t().expand(bh, d, m)
        we = w.expand(bh, m, d)
        g_out = g_out.contiguous()
        g_q = torch.empty_like(qs) if ctx.needs_input_grad[0] else None
        # Query side: gradient of num = [out * den, den], and of the state.
        g_state = qs.new_zeros(bh, m, dv + 1)
        gn_total = qs.new_zeros(bh, 1, dv + 1)
        st = state.transpose(1, 2)
        for s in range(0, length, rows):
            n = min(rows, length - s)
            g_num, g_den = _ratio_grads(g_out[:, s:s + n], out[:, s:s + n], den[:, s:s + n])
            gn = torch.cat([g_num, g_den], -1)  # [BH, n, Dv+1]
            p = torch.bmm(qs[:, s:s + n], wt, out=work[0, : bh * n * m].view(bh, n, m))
            e = p.sub_(row_max[:, s:s + n, None]).exp_()
            g_state.baddbmm_(e.transpose(1, 2), gn)
            gn_total += gn.sum(-2, keepdim=True)
            if g_q is None:
                continue
            gp = torch.bmm(gn, st, out=work[1, : bh * n * m].view(bh, n, m)).mul_(e)
            sp = gp.sum(-1, keepdim=True)
            gq = torch.bmm(gp, we)
            # through the row max: -sum_f gp at the argmax feature
            gq.sub_(sp * w[idx[:, s:s + n]])
            g_q[:, s:s + n] = gq.mul_(scale)
        g_state += eps * gn_total  # phi(q) = e + eps
        # Key side.
        need_k, need_v = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        g_k = torch.empty_like(ks) if need_k else None
        g_v = torch.empty_like(v) if need_v else None
        gs_v = g_state[..., :dv].contiguous()  # [BH, m, Dv]
        gs_1 = g_state[..., dv:].transpose(1, 2)  # [BH, 1, m]
        gs_vt = gs_v.transpose(1, 2)
        g_big = qs.new_zeros(bh)
        shift = knorm + big[:, None]  # l - R = k' W^T - shift
        for s in range(0, length, rows):
            n = min(rows, length - s)
            lg = torch.bmm(ks[:, s:s + n], wt, out=work[0, : bh * n * m].view(bh, n, m))
            g = lg.sub_(shift[:, s:s + n, None]).exp_()
            if need_v:
                g_v[:, s:s + n] = torch.bmm(g, gs_v)
            if need_k:
                gl = torch.baddbmm(gs_1, v[:, s:s + n], gs_vt,
                                   out=work[1, : bh * n * m].view(bh, n, m)).mul_(g)
                rs = gl.sum(-1, keepdim=True)
                g_big -= rs.sum((-1, -2))
                gk = torch.bmm(gl, we).sub_(rs * ks[:, s:s + n])
                g_k[:, s:s + n] = gk.mul_(scale)
        if need_v:
            g_v += eps * gs_v.sum(-2, keepdim=True)
            if mask is not None:
                g_v.mul_(mask[..., None].to(g_v.dtype))
        if need_k:
            # R = l at (key arg, its argmax feature), unless floored.
            b_idx = torch.arange(bh, device=ks.device)
            k_arg = ks[b_idx, arg]  # [BH, d]
            f_arg = (k_arg @ w.t()).argmax(-1)
            g_big = torch.where(big > _STAB_FLOOR, g_big, torch.zeros_like(g_big))
            g_k[b_idx, arg] += scale * g_big[:, None] * (w[f_arg] - k_arg)
        return g_q, g_k, g_v, None, None, None


def _ratio_grads(g_out: Tensor, out: Tensor, den: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of out = num / den with respect to num [.., Dv] and den [.., 1]; a row with
    den = 0 (no real key: out 0, see :func:`_divide`) gets zero gradients."""
    den = den[..., None]
    real = den > 0
    safe = torch.where(real, den, torch.ones_like(den))
    g_den = torch.where(real, -(g_out * out).sum(-1, keepdim=True) / safe, torch.zeros_like(den))
    return g_out / safe, g_den


class _BidirectionalRelu(torch.autograd.Function):
    """Bidirectional FAVOR+ ReLU attention, blocked over rows like :class:`_BidirectionalSoftmax`:
    q, k [BH, L, d], v [BH, L, Dv]; phi(x) = relu(x W^T / sqrt(m)) + eps on both sides.

    The key eps part is a rank-one term of the state; features are made block by block in a
    reused workspace and recomputed in backward, so no [L, m] tensor exists. Memory O(L (d + Dv)).
    """

    @staticmethod
    def forward(ctx, q, k, v, w, mask, eps: float):
        bh, length, d = q.shape
        dv = v.shape[-1]
        m = w.shape[0]
        rows = _block_rows(bh, length, m)
        work = q.new_empty(bh * rows * m)
        wt = (w.t() * m**-0.5).expand(bh, d, m)
        if mask is None:
            vm, keep, cnt = v, None, q.new_full((bh, 1), float(length))
        else:
            keep = mask[..., None].to(v.dtype)  # [BH, L, 1]
            vm, cnt = v * keep, keep.sum(-2)
        state_v = q.new_zeros(bh, m, dv)  # sum_j phi(k_j) v_j^T over real keys
        state_1 = q.new_zeros(bh, m, 1)  # sum_j phi(k_j)
        for s in range(0, length, rows):
            n = min(rows, length - s)
            r = torch.bmm(k[:, s:s + n], wt, out=work[: bh * n * m].view(bh, n, m)).relu_()
            state_v.baddbmm_(r.transpose(1, 2), vm[:, s:s + n])
            if keep is None:
                state_1 += r.sum(-2)[..., None]
            else:
                state_1.baddbmm_(r.transpose(1, 2), keep[:, s:s + n])
        # phi(k) = relu + eps: the eps part is a rank-one term.
        state_v += eps * vm.sum(-2, keepdim=True)
        state_1 += eps * cnt[:, None]
        colsum_v = eps * state_v.sum(-2, keepdim=True)  # the query eps part, [BH, 1, Dv]
        colsum_1 = eps * state_1.sum(-2, keepdim=True)  # [BH, 1, 1]
        out = q.new_empty(bh, length, dv)
        den = q.new_empty(bh, length)
        for s in range(0, length, rows):
            n = min(rows, length - s)
            r = torch.bmm(q[:, s:s + n], wt, out=work[: bh * n * m].view(bh, n, m)).relu_()
            dn = torch.baddbmm(colsum_1, r, state_1)  # [BH, n, 1]
            den[:, s:s + n] = dn[..., 0]
            num = torch.baddbmm(colsum_v, r, state_v, out=out[:, s:s + n])
            num /= torch.where(dn > 0, dn, torch.ones_like(dn))
        ctx.eps = eps
        ctx.save_for_backward(q, k, v, w, keep, state_v, state_1, out, den)
        return out

    @staticmethod
    def backward(ctx, g_out):
        q, k, v, w, keep, state_v, state_1, out, den = ctx.saved_tensors
        eps = ctx.eps
        bh, length, d = q.shape
        dv = v.shape[-1]
        m = w.shape[0]
        rows = _block_rows(bh, length, m)
        work = q.new_empty(2, bh * rows * m)
        wt = (w.t() * m**-0.5).expand(bh, d, m)
        we = wt.transpose(1, 2)
        g_out = g_out.contiguous()
        g_q = torch.empty_like(q) if ctx.needs_input_grad[0] else None
        g_sv = q.new_zeros(bh, m, dv)  # gradient of state_v
        g_s1 = q.new_zeros(bh, m, 1)  # of state_1
        sum_num = q.new_zeros(bh, 1, dv)
        sum_den = q.new_zeros(bh, 1, 1)
        s_vt, s_1t = state_v.transpose(1, 2), state_1.transpose(1, 2)  # [BH, Dv, m], [BH, 1, m]
        for s in range(0, length, rows):
            n = min(rows, length - s)
            g_num, g_den = _ratio_grads(g_out[:, s:s + n], out[:, s:s + n], den[:, s:s + n])
            r = torch.bmm(q[:, s:s + n], wt, out=work[0, : bh * n * m].view(bh, n, m)).relu_()
            g_sv.baddbmm_(r.transpose(1, 2), g_num)
            g_s1.baddbmm_(r.transpose(1, 2), g_den)
            sum_num += g_num.sum(-2, keepdim=True)
            sum_den += g_den.sum(-2, keepdim=True)
            if g_q is None:
                continue
            gp = torch.bmm(g_num, s_vt, out=work[1, : bh * n * m].view(bh, n, m))
            gp.addcmul_(g_den, s_1t)
            gp = torch.ops.aten.threshold_backward(gp, r, 0.0)
            torch.bmm(gp, we, out=g_q[:, s:s + n])
        # phi(q) = relu + eps: every query's eps part reaches the state too.
        g_sv += eps * sum_num
        g_s1 += eps * sum_den
        need_k, need_v = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        g_k = torch.empty_like(k) if need_k else None
        g_v = torch.empty_like(v) if need_v else None
        g_svt, g_s1t = g_sv.transpose(1, 2), g_s1.transpose(1, 2)  # [BH, Dv, m], [BH, 1, m]
        for s in range(0, length, rows):
            n = min(rows, length - s)
            r = torch.bmm(k[:, s:s + n], wt, out=work[0, : bh * n * m].view(bh, n, m)).relu_()
            if need_v:
                torch.bmm(r, g_sv, out=g_v[:, s:s + n])
            if need_k:
                gl = torch.baddbmm(g_s1t, v[:, s:s + n], g_svt,
                                   out=work[1, : bh * n * m].view(bh, n, m))
                gl = torch.ops.aten.threshold_backward(gl, r, 0.0)
                torch.bmm(gl, we, out=g_k[:, s:s + n])
        if need_v:
            g_v += eps * g_sv.sum(-2, keepdim=True)
        if keep is not None:  # padded keys have zero features: no gradient
            if need_k:
                g_k.mul_(keep)
            if need_v:
                g_v.mul_(keep)
        return g_q, g_k, g_v, None, None, None


@torch.no_grad()
def _exclusive_scan(states: Tensor, carry: Tensor | None) -> Tensor:
    """P_c = (P_{c-1} + S_{c-1}) * carry_{c-1}, P_0 = 0 (plain exclusive cumsum if carry is None).

    states [B, H, N, m, D]; carry [B, H, N-1] rescales a state from chunk c-1's stabiliser to
    chunk c's. Memory O(N m D) = O((L/C) m D).
    """
    out = torch.zeros_like(states)
    n = states.shape[2]
    if n == 1:
        return out
    if carry is None:
        torch.cumsum(states[:, :, :-1], dim=2, out=out[:, :, 1:])
        return out
    for c in range(1, n):
        torch.add(out[:, :, c - 1], states[:, :, c - 1], out=out[:, :, c])
        out[:, :, c].mul_(carry[:, :, c - 1, None, None])
    return out


@torch.no_grad()
def _exclusive_scan_backward_(
    g: Tensor, inclusive: Tensor, carry: Tensor | None
) -> Tensor | None:
    """Reverse scan of :func:`_exclusive_scan`, in place: ``g`` holds the gradients of the
    prefixes P on entry and those of the states S on exit; returns the carries' gradient.

    inclusive_c = P_c + S_c, so P_{c+1} = inclusive_c * carry_c.
    """
    n = g.shape[2]
    if n == 1:
        g.zero_()
        return None if carry is None else torch.zeros_like(carry)
    if carry is None:
        # g_S_c = sum_{c' > c} g_P_c'
        rev = torch.cumsum(g[:, :, 1:].flip(2), dim=2).flip(2)
        g[:, :, :-1] = rev
        g[:, :, -1] = 0
        return None
    g_carry = torch.empty_like(carry)
    acc = g[:, :, n - 1].clone()  # total gradient of P_{n-1}
    g[:, :, n - 1] = 0  # the last state feeds no later chunk
    for c in range(n - 1, 0, -1):
        g_carry[:, :, c - 1] = (acc * inclusive[:, :, c - 1]).sum((-1, -2))
        acc.mul_(carry[:, :, c - 1, None, None])  # gradient of inclusive_{c-1} = of S_{c-1}
        g_prev = g[:, :, c - 1].clone()  # gradient of P_{c-1} itself
        g[:, :, c - 1] = acc
        acc.add_(g_prev)
    return g_carry


def favor_attention_matrix(
    q: Tensor,
    k: Tensor,
    projection: Tensor,
    *,
    kernel: str | Callable[[Tensor], Tensor] | FeatureKernel = "softmax",
    causal: bool = False,
    mask: Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    eps: float | None = None,
) -> Tensor:
    """The [B, H, L, L] matrix implied by FAVOR+: normalised phi(Q) phi(K)^T (causally masked).

    Obtained as the paper does, by running :func:`favor_attention` on one-hot values
    (V = I_L), so it is exactly what the fast path computes. O(L^2 m): short sequences only.
    """
    b, h, length, _ = q.shape
    dt = _compute_dtype(q.dtype)
    eye = torch.eye(length, dtype=dt, device=q.device).expand(b, h, length, length)
    return favor_attention(q.to(dt), k.to(dt), eye, projection, kernel=kernel, causal=causal,
                           mask=mask, chunk_size=chunk_size, eps=eps)


_LAYER_IDS = itertools.count()


class FavorAttention(Attention):
    """Multi-head FAVOR+ attention layer (kernel chosen by the registered kind).

    The projection [m, Dh] is a buffer (saved in the state dict). During training,
    :meth:`maybe_redraw` draws a fresh one every ``cfg.redraw_interval`` steps (0 = never),
    seeded from (cfg.seed, layer id, step) so all DDP ranks agree without communication;
    the layer id is a buffer too, so a resumed run continues the same draws. Never redraws
    in eval mode.
    """

    kernel_name = "softmax"

    def __init__(self, cfg, d_model: int, n_heads: int) -> None:
        super().__init__(cfg, d_model, n_heads)
        self.kernel = resolve_kernel(self.kernel_name)
        self.eps = self.kernel.default_eps if cfg.kernel_eps is None else cfg.kernel_eps
        self.chunk_size = cfg.chunk_size
        # Default id: construction order in this process (identical on every rank that builds
        # the same model); models should call assign_layer_id(block index) instead.
        self.register_buffer("layer_id", torch.tensor(next(_LAYER_IDS), dtype=torch.long))
        self.register_buffer("last_redraw_step", torch.tensor(0, dtype=torch.long))
        self.register_buffer("projection", self._draw(0))

    def _draw(self, step: int) -> Tensor:
        gen = seeded_generator(self.cfg.seed, int(self.layer_id), step)
        return draw_projection(
            self.cfg.nb_features,
            self.head_dim,
            feature_type=self.cfg.feature_type,
            scaling=self.cfg.ortho_scaling,
            generator=gen,
        )

    @torch.no_grad()
    def assign_layer_id(self, layer_id: int) -> None:
        """Give this layer an explicit id (e.g. its block index; the model should call this
        so that ids do not depend on how many layers a process built before) and redraw the
        step-0 projection from (cfg.seed, layer_id, 0)."""
        self.layer_id.fill_(int(layer_id))
        self.redraw(0)

    @torch.no_grad()
    def redraw(self, step: int) -> None:
        """Replace the projection by the draw for ``step`` (deterministic)."""
        new = self._draw(step).to(device=self.projection.device, dtype=self.projection.dtype)
        self.projection.copy_(new)
        self.last_redraw_step.fill_(step)

    def maybe_redraw(self, step: int) -> bool:
        interval = self.cfg.redraw_interval
        if not self.training or interval <= 0 or step <= 0 or step % interval:
            return False
        if int(self.last_redraw_step) == step:  # already drawn for this step (grad accumulation)
            return False
        self.redraw(step)
        return True

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        return favor_attention(q, k, v, self.projection, kernel=self.kernel, causal=self.causal,
                               mask=mask, chunk_size=self.chunk_size, eps=self.eps)

    def attend_matrix(self, q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
        return favor_attention_matrix(q, k, self.projection, kernel=self.kernel,
                                      causal=self.causal, mask=mask, chunk_size=self.chunk_size,
                                      eps=self.eps)


@register("favor_softmax")
class FavorSoftmaxAttention(FavorAttention):
    """FAVOR+ with positive random features of the softmax kernel."""

    kernel_name = "softmax"


@register("favor_relu")
class FavorReluAttention(FavorAttention):
    """Performer-ReLU: generalized features relu(x W^T / sqrt(m)) + eps."""

    kernel_name = "relu"
