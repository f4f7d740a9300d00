"""Bidirectional FAVOR+ for the softmax and ReLU kernels, in blocks of rows.

out = D^-1 (phi(Q) (phi(K)^T [V, 1])): the key features of a block of rows are made in a
reused workspace and folded into the [m, Dv+1] state at once, then the query features of
each block read it; backward recomputes the features, so no [L, m] tensor exists.
"""

from __future__ import annotations

import torch
from torch import Tensor

from protein_performer.attention.favor.common import (
    add_key_max_grads,
    inverse_den,
    ratio_grads,
    sub_at_row_max,
)
from protein_performer.attention.numerics import LOG2E, STAB_FLOOR


def bidirectional_softmax(
    q: Tensor, k: Tensor, v: Tensor, w: Tensor, mask: Tensor | None, eps: float
) -> Tensor:
    """q, k [BH, L, d], v [BH, L, Dv], w [m, d], mask [BH, L] (True = real) -> [BH, L, Dv]."""
    return _BidirectionalSoftmax.apply(q, k, v, w, mask, eps)


def bidirectional_relu(
    q: Tensor, k: Tensor, v: Tensor, w: Tensor, mask: Tensor | None, eps: float
) -> Tensor:
    """As :func:`bidirectional_softmax`, with the ReLU kernel."""
    return _BidirectionalRelu.apply(q, k, v, w, mask, eps)


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
        # x' = x d^-1/4 is folded into W (no scaled [BH, L, d] copies of q and k), and so is
        # log2 e: logits, maxima and norms are held in base 2, every exp is an exp2.
        wt = (w * (scale * LOG2E)).t().expand(bh, d, m)
        # Per key: |k'|^2/2, +inf on padded keys so that they get 2^-inf = 0 features.
        knorm = torch.linalg.vector_norm(k, dim=-1).square_().mul_(0.5 * scale * scale * LOG2E)
        if mask is not None:
            knorm.masked_fill_(~mask, float("inf"))
        state_v = q.new_zeros(bh, m, dv)  # sum_j g_j v_j^T
        state_1 = q.new_zeros(bh, m)  # sum_j g_j
        big = torch.full((bh,), STAB_FLOOR * LOG2E, dtype=q.dtype, device=q.device)  # running R
        arg = torch.zeros(bh, dtype=torch.long, device=q.device)  # key holding R
        for s in range(0, length, rows):
            n = min(rows, length - s)
            lg = torch.bmm(k[:, s : s + n], wt, out=work[: bh * n * m].view(bh, n, m))
            lg.sub_(knorm[:, s : s + n, None])
            row_max = lg.amax(-1)  # [BH, n]
            blk_max, blk_arg = row_max.max(-1)
            grow = blk_max > big
            new = torch.where(grow, blk_max, big)
            arg = torch.where(grow, blk_arg + s, arg)
            rescale = torch.exp2(big - new)  # to the new maximum
            state_v.mul_(rescale[:, None, None])
            state_1.mul_(rescale[:, None])
            big = new
            g = lg.sub_(big[:, None, None]).exp2_()
            state_v.baddbmm_(g.transpose(1, 2), v[:, s : s + n])
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
        out = q.new_empty(bh, length, dv)
        den = q.new_empty(bh, length)
        colsum_v = eps * state_v.sum(-2, keepdim=True)  # [BH, 1, Dv]
        colsum_1 = eps * state_1.sum(-1, keepdim=True)  # [BH, 1]
        for s in range(0, length, rows):
            n = min(rows, length - s)
            p = torch.bmm(q[:, s : s + n], wt, out=work[: bh * n * m].view(bh, n, m))
            e = p.sub_(p.amax(-1, keepdim=True)).exp2_()
            num = torch.baddbmm(colsum_v, e, state_v)
            dn = torch.baddbmm(colsum_1[..., None], e, state_1[..., None])  # [BH, n, 1]
            den[:, s : s + n] = dn[..., 0]
            # no real key to attend: 0 / 0 -> 0 (see _divide)
            out[:, s : s + n] = num / torch.where(dn > 0, dn, torch.ones_like(dn))
        ctx.eps = eps
        state = torch.cat([state_v, state_1[..., None]], -1)
        ctx.save_for_backward(q, k, v, w, mask, knorm, state, big, arg, out, den)
        return out

    @staticmethod
    def backward(ctx, g_out):
        q, k, v, w, mask, knorm, state, big, arg, out, den = ctx.saved_tensors
        eps = ctx.eps
        bh, length, d = q.shape
        dv = v.shape[-1]
        m = w.shape[0]
        scale = d**-0.25
        rows = _block_rows(bh, length, m)
        work = q.new_empty(3, bh * rows * m)
        ws = w * scale  # x' W^T = x (W d^-1/4)^T
        wt, we = (ws * LOG2E).t().expand(bh, d, m), ws.expand(bh, m, d)  # features in base 2
        g_out = g_out.contiguous()
        g_q = torch.empty_like(q) if ctx.needs_input_grad[0] else None
        # Query side: gradient of num = [out * den, den], and of the state.
        g_state = q.new_zeros(bh, m, dv + 1)
        gn_total = q.new_zeros(bh, 1, dv + 1)
        st = state.transpose(1, 2)
        inv, gn_buf = inverse_den(den), q.new_empty(bh, rows, dv + 1)
        for s in range(0, length, rows):
            n = min(rows, length - s)
            gn = ratio_grads(
                g_out[:, s : s + n], out[:, s : s + n], inv[:, s : s + n], gn_buf[:, :n]
            )
            p = torch.bmm(q[:, s : s + n], wt, out=work[0, : bh * n * m].view(bh, n, m))
            # the max of this recomputed p (not a saved one): sub_at_row_max needs e == 1 there
            e = p.sub_(p.amax(-1, keepdim=True)).exp2_()
            g_state.baddbmm_(e.transpose(1, 2), gn)
            gn_total += gn.sum(-2, keepdim=True)
            if g_q is None:
                continue
            gp = torch.bmm(gn, st, out=work[1, : bh * n * m].view(bh, n, m)).mul_(e)
            sub_at_row_max(gp, e, out=work[2, : bh * n * m].view(bh, n, m))  # through the row max
            g_q[:, s : s + n] = torch.bmm(gp, we)
        g_state += eps * gn_total  # phi(q) = e + eps
        # Key side.
        need_k, need_v = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        g_k = torch.empty_like(k) if need_k else None
        g_v = torch.empty_like(v) if need_v else None
        gs_v = g_state[..., :dv].contiguous()  # [BH, m, Dv]
        gs_1 = g_state[..., dv:].transpose(1, 2)  # [BH, 1, m]
        gs_vt = gs_v.transpose(1, 2)
        g_big = q.new_zeros(bh)
        shift = knorm + big[:, None]  # l - R = k' W^T - shift
        for s in range(0, length, rows):
            n = min(rows, length - s)
            lg = torch.bmm(k[:, s : s + n], wt, out=work[0, : bh * n * m].view(bh, n, m))
            g = lg.sub_(shift[:, s : s + n, None]).exp2_()
            if need_v:
                g_v[:, s : s + n] = torch.bmm(g, gs_v)
            if need_k:
                gl = torch.baddbmm(
                    gs_1, v[:, s : s + n], gs_vt, out=work[1, : bh * n * m].view(bh, n, m)
                ).mul_(g)
                rs = gl.sum(-1, keepdim=True)
                g_big -= rs.sum((-1, -2))
                # dl/dk = d^-1/4 W - d^-1/2 k
                g_k[:, s : s + n] = torch.bmm(gl, we).sub_(
                    rs * k[:, s : s + n], alpha=scale * scale
                )
        if need_v:
            g_v += eps * gs_v.sum(-2, keepdim=True)
            if mask is not None:
                g_v.mul_(mask[..., None].to(g_v.dtype))
        if need_k:  # R = l at (key arg, its argmax feature), unless floored
            g_max = q.new_zeros(bh, length)
            floored = big <= STAB_FLOOR * LOG2E
            g_max[torch.arange(bh, device=k.device), arg] = g_big.masked_fill_(floored, 0.0)
            add_key_max_grads(g_k, k, ws, g_max)
        return g_q, g_k, g_v, None, None, None


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
            r = torch.bmm(k[:, s : s + n], wt, out=work[: bh * n * m].view(bh, n, m)).relu_()
            state_v.baddbmm_(r.transpose(1, 2), vm[:, s : s + n])
            if keep is None:
                state_1 += r.sum(-2)[..., None]
            else:
                state_1.baddbmm_(r.transpose(1, 2), keep[:, s : s + n])
        # phi(k) = relu + eps: the eps part is a rank-one term.
        state_v += eps * vm.sum(-2, keepdim=True)
        state_1 += eps * cnt[:, None]
        colsum_v = eps * state_v.sum(-2, keepdim=True)  # the query eps part, [BH, 1, Dv]
        colsum_1 = eps * state_1.sum(-2, keepdim=True)  # [BH, 1, 1]
        out = q.new_empty(bh, length, dv)
        den = q.new_empty(bh, length)
        for s in range(0, length, rows):
            n = min(rows, length - s)
            r = torch.bmm(q[:, s : s + n], wt, out=work[: bh * n * m].view(bh, n, m)).relu_()
            dn = torch.baddbmm(colsum_1, r, state_1)  # [BH, n, 1]
            den[:, s : s + n] = dn[..., 0]
            num = torch.baddbmm(colsum_v, r, state_v, out=out[:, s : s + n])
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
        inv, gn_buf = inverse_den(den), q.new_empty(bh, rows, dv + 1)
        for s in range(0, length, rows):
            n = min(rows, length - s)
            gn = ratio_grads(
                g_out[:, s : s + n], out[:, s : s + n], inv[:, s : s + n], gn_buf[:, :n]
            )
            g_num, g_den = gn[..., :dv], gn[..., dv:]
            r = torch.bmm(q[:, s : s + n], wt, out=work[0, : bh * n * m].view(bh, n, m)).relu_()
            g_sv.baddbmm_(r.transpose(1, 2), g_num)
            g_s1.baddbmm_(r.transpose(1, 2), g_den)
            sum_num += g_num.sum(-2, keepdim=True)
            sum_den += g_den.sum(-2, keepdim=True)
            if g_q is None:
                continue
            gp = torch.bmm(g_num, s_vt, out=work[1, : bh * n * m].view(bh, n, m))
            gp.addcmul_(g_den, s_1t)
            gp = torch.ops.aten.threshold_backward(gp, r, 0.0)
            torch.bmm(gp, we, out=g_q[:, s : s + n])
        # phi(q) = relu + eps: every query's eps part reaches the state too.
        g_sv += eps * sum_num
        g_s1 += eps * sum_den
        need_k, need_v = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        g_k = torch.empty_like(k) if need_k else None
        g_v = torch.empty_like(v) if need_v else None
        g_svt, g_s1t = g_sv.transpose(1, 2), g_s1.transpose(1, 2)  # [BH, Dv, m], [BH, 1, m]
        for s in range(0, length, rows):
            n = min(rows, length - s)
            r = torch.bmm(k[:, s : s + n], wt, out=work[0, : bh * n * m].view(bh, n, m)).relu_()
            if need_v:
                torch.bmm(r, g_sv, out=g_v[:, s : s + n])
            if need_k:
                gl = torch.baddbmm(
                    g_s1t, v[:, s : s + n], g_svt, out=work[1, : bh * n * m].view(bh, n, m)
                )
                gl = torch.ops.aten.threshold_backward(gl, r, 0.0)
                torch.bmm(gl, we, out=g_k[:, s : s + n])
        if need_v:
            g_v += eps * g_sv.sum(-2, keepdim=True)
        if keep is not None:  # padded keys have zero features: no gradient
            if need_k:
                g_k.mul_(keep)
            if need_v:
                g_v.mul_(keep)
        return g_q, g_k, g_v, None, None, None
