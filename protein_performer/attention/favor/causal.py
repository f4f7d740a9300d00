"""Causal FAVOR+ for the softmax and ReLU kernels: the backend switch, and the chunk loop.

:func:`causal_favor` is the one place that picks an implementation (logged once per device
type and implementation); all three compute the same function and are tested against each
other and the float64 reference:
- ``cpp``: the chunk loop in C++ (:mod:`favor.causal_cpu`, csrc/favor_causal.cpp: one head per
  thread, fused elementwise passes), the CPU default when it builds;
- ``loop``: the Python chunk loop below (the reference of the C++ kernel; the CPU fallback);
- ``chunkwise``: the chunk-parallel form (:mod:`favor.chunkwise`), a fixed series of batched
  ops whatever L: the default on CUDA (and other accelerators), where the loop's ~200 kernel
  launches per chunk would bind it.
``auto`` takes :data:`AUTO_IMPL` by device type. Each has its default chunk
(:data:`DEFAULT_CHUNK`).

The same function as the chunk-parallel form (see the :mod:`favor` package docstring for the
no-lookahead softmax stabiliser), computed by a loop over chunks that carries the
[m, Dv+1] state S (held transposed): per chunk, the query and key features are made in two
reused [C, m] workspaces, the output is phi(Q_c) S_c + tril(phi(Q_c) G_c^T) [V_c, 1], and S is
updated with G_c^T [V_c, 1]. ReLU: G = relu + eps holds the key eps. Softmax: the rows are
scaled by the rescale factor f_i, and the key eps part, which f must not reach, is
eps sum(phi(q_i)) times the sum of [v_j, 1] over j <= i: added to the [C, C] scores inside the
chunk and as eps sum(phi(q_i)) [total] for the earlier chunks (no cumulative sums). No [L, m]
or full-length [L, Dv+1] tensor is ever built. Saved for backward are the states and the
[C, C] chunk scores (keeping the scores measured 4-8% faster than recomputing them); without
a gradient nothing per chunk is kept. The reverse loop recomputes the features and carries
the state gradient back (as the authors' JAX code does).
Memory O(L (d + Dv + C) + (L/C) m Dv).

Softmax notation: l_j = k_j' W^T - |k_j'|^2/2 (x' = x d^-1/4), M_i = max over real keys j <= i
and features of l_j (floored at -1e4), R_c = M at the last row of chunk c; key features
G_j = exp(l_j - R_c); query i is rescaled by exp(min(R_c - M_i, cap)); the state is carried
to the next chunk with exp(R_c - R_{c+1}). The gradients through these maxima (they matter
through eps) go to the key and feature holding each maximum. The code holds l, M, R and the
cap in base 2 (times log2 e) so that every exp is an exp2 (4x faster on CPU); gradients are
taken in natural units.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from protein_performer.attention.config import CAUSAL_IMPLS
from protein_performer.attention.favor import causal_cpu, chunkwise
from protein_performer.attention.favor.causal_cpu import CausalFavorCpu
from protein_performer.attention.favor.common import (
    add_key_max_grads,
    feature_projection,
    inverse_den,
    key_norms,
    ratio_grads,
    rescale_cap,
    scaled_projection,
    sub_at_row_max,
)
from protein_performer.attention.numerics import LOG2E, STAB_FLOOR

log = logging.getLogger(__name__)

# ``auto`` by device type (others: chunkwise). On CPU the C++ kernel when it builds, else the
# Python loop (the C++ build warns why); the chunkwise form measured slower there
# (docs/benchmarks.md, "Causal FAVOR+ on a GPU").
AUTO_IMPL = {"cpu": "cpp"}
# Tokens per chunk when none is given. The loop and the C++ kernel: 64, measured best on CPU
# (docs/benchmarks.md, session 6). The chunkwise form: 128, by counting (not yet measured on a
# GPU). Per head and token, with m features, Dv+1 value columns and N = L/C chunks, it costs
# 4 d m (features) + 4 m (Dv+1) (states, prefix products) + 2 C (m + Dv+1) (intra-chunk) +
# 2 (L / C^2) m (Dv+1) (the [N, N] weights GEMM) FLOPs; at m = 256, d = Dv = 64 that is 231k at
# C = 128 against 240k at C = 64 and 301k at C = 256 for L = 8192, and 280k against 439k and
# 313k for L = 32768 (FLOP optimum C^3 = 2 L m (Dv+1) / (m+Dv+1): C = 95 at 8192, 150 at
# 32768). The memory traffic, L (C + 2 m (Dv+1) / C) floats for the scores and the [N, m, Dv+1]
# states and prefix, is least at C = sqrt(2 m (Dv+1)) = 182. 128 sits between the optima and
# is a multiple of the GPU's GEMM tiles.
DEFAULT_CHUNK = {"loop": 64, "cpp": 64, "chunkwise": 128}
_logged: set[tuple[str, str]] = set()


def resolve_impl(impl: str, q: Tensor) -> str:
    """The implementation that runs ``impl`` ("auto" or a forced one) on q's device; logged
    once per (device type, implementation). A forced ``cpp`` that cannot run is an error."""
    if impl not in CAUSAL_IMPLS:
        raise ValueError(f"attention.causal_impl must be one of {CAUSAL_IMPLS}, got {impl!r}")
    if impl == "auto":
        impl = AUTO_IMPL.get(q.device.type, "chunkwise")
        if impl == "cpp" and not causal_cpu.usable(q):
            impl = "loop"
    elif impl == "cpp" and not causal_cpu.usable(q):
        raise ValueError(
            f"model.attention.causal_impl=cpp runs CPU float32/float64 tensors once the "
            f"C++ kernel is built; got {q.device.type} {q.dtype} tensors"
            f"{'' if q.device.type != 'cpu' else ' (the build failed or is disabled)'}"
            "; set model.attention.causal_impl=auto, loop or chunkwise"
        )
    if (q.device.type, impl) not in _logged:
        _logged.add((q.device.type, impl))
        log.info("causal FAVOR+ on %s tensors: the %s implementation", q.device.type, impl)
    return impl


def causal_favor(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    w: Tensor,
    mask: Tensor | None,
    eps: float,
    chunk: int | None,
    softmax: bool,
    impl: str = "auto",
) -> Tensor:
    """q, k [BH, L, d], v [BH, L, Dv], w [m, d], mask [BH, L] (True = real) -> [BH, L, Dv].

    ``impl``: one of :data:`CAUSAL_IMPLS` (see :func:`resolve_impl`); ``chunk``: tokens per
    chunk, None = the implementation's default (:data:`DEFAULT_CHUNK`)."""
    impl = resolve_impl(impl, q)
    chunk = DEFAULT_CHUNK[impl] if chunk is None else chunk
    if not torch.is_grad_enabled():  # keep nothing for backward (needs_input_grad ignores no_grad)
        q, k, v = q.detach(), k.detach(), v.detach()
    if impl == "chunkwise":
        return chunkwise.causal_favor_chunkwise(q, k, v, w, mask, eps, chunk, softmax)
    fn = CausalFavorCpu if impl == "cpp" else _CausalFavor
    return fn.apply(q, k, v, w, mask, eps, chunk, softmax)


def _with_ones(buf: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """[v, 1] of one chunk, zero on padded keys, written into buf [BH, n, Dv+1] (a reused
    workspace: a full-length [BH, L, Dv+1] copy would cost its page faults on every call)."""
    buf[..., :-1].copy_(v)
    if mask is None:
        buf[..., -1] = 1.0
    else:
        buf[..., -1].copy_(mask)
        buf[..., :-1].mul_(buf[..., -1:])
    return buf


def _chunks(t: Tensor | None, chunk: int, n_chunks: int) -> list:
    """Views of t [BH, L, ...] per chunk of rows (one split call, not a slice per chunk)."""
    return [None] * n_chunks if t is None else list(t.split(chunk, 1))


def _rows(buf: Tensor, bh: int, n: int, width: int) -> Tensor:
    """A [BH, n, width] view of the front of a flat workspace."""
    return buf[: bh * n * width].view(bh, n, width)


class _CausalFavor(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, w, mask, eps: float, chunk: int, softmax: bool):
        bh, length, d = q.shape
        dv = v.shape[-1]
        m = w.shape[0]
        chunk = min(chunk, length)
        n_chunks = -(-length // chunk)
        wt = feature_projection(w, d, softmax).expand(bh, d, m)
        v1_buf = q.new_empty(bh, chunk, dv + 1)
        work = q.new_empty(2, bh * chunk * m)
        # Saved for backward only when a gradient is wanted (inference reuses one chunk's room).
        keep = any(ctx.needs_input_grad[:3])
        saved_scores = q.new_empty(
            n_chunks if keep else 1, bh * chunk * chunk
        )  # tril(phi(Q_c) G_c^T)
        # The state is held transposed, [Dv+1, m]: its update V1_c^T G_c then has m output
        # columns (a GEMM with 65 output columns ran 20-30% slower than this one).
        # With a gradient, chunk c's state is made in place in states[c] (no copy): there
        # S_c = carry T_{c-1}, then T_c = S_c + G_c^T V1_c (backward rescales T_{c-1} itself).
        states = q.new_empty(n_chunks if keep else 1, bh, dv + 1, m)  # T_c^T
        state = states[0].zero_()  # S_c^T
        # softmax only (ReLU's key eps rides in the features): sum of [v, 1] over earlier chunks
        totals = q.new_empty(n_chunks, bh, 1, dv + 1) if softmax else None
        total = q.new_zeros(bh, 1, dv + 1)
        out = q.new_empty(bh, length, dv)
        den = q.new_empty(bh, length)
        tiny = torch.finfo(q.dtype).tiny
        qc, kc, vc, mc, outc, denc = (
            _chunks(t, chunk, n_chunks) for t in (q, k, v, mask, out, den)
        )
        sum_q = q.new_empty(bh, length, 1) if softmax else None  # sum_f phi(q_i)_f
        if softmax:
            knorm = key_norms(k, mask)
            run = q.new_empty(bh, length)  # M_i
            src = torch.empty(
                bh, length, dtype=torch.long, device=q.device
            )  # key of M_i, -1: floored
            knc, sqc, runc, srcc = (
                _chunks(t, chunk, n_chunks) for t in (knorm[..., None], sum_q, run, src)
            )
            # Starting at the floor, a row whose keys all lie below it keeps the floor, source -1.
            m_prev = q.new_full((bh, 1), STAB_FLOOR * LOG2E)
            src_prev = torch.full((bh, 1), -1, dtype=torch.long, device=q.device)
            cap = rescale_cap(q.dtype)
        for c in range(n_chunks):
            s = c * chunk
            n = qc[c].shape[1]
            phi = torch.bmm(qc[c], wt, out=_rows(work[0], bh, n, m))
            g = torch.bmm(kc[c], wt, out=_rows(work[1], bh, n, m))
            if softmax:
                phi.sub_(phi.amax(-1, keepdim=True)).exp2_()
                g.sub_(knc[c])
                cm, ci = torch.cummax(g.amax(-1), dim=-1)  # running max inside the chunk
                older = m_prev >= cm
                mi = torch.where(older, m_prev, cm, out=runc[c])
                torch.where(older, src_prev, ci.add_(s), out=srcc[c])
                r_prev, m_prev, src_prev = m_prev, mi[:, -1:], srcc[c][:, -1:]
                if c > 0:
                    carry = torch.exp2(r_prev - m_prev)[..., None]
                    state = torch.mul(state, carry, out=states[c]) if keep else state.mul_(carry)
                g.sub_(m_prev[..., None]).exp2_()
            else:
                if keep and c > 0:
                    state = states[c].copy_(state)
                phi.relu_()
                g.relu_().add_(eps)  # phi(k) = relu + eps: no rescale, so eps rides in the features
                if mask is not None:
                    g.mul_(mc[c][..., None])
            phi.add_(eps)
            v1c = _with_ones(v1_buf[:, :n], vc[c], mc[c])
            scores = _rows(saved_scores[c if keep else 0], bh, n, n)
            torch.bmm(phi, g.transpose(1, 2), out=scores)
            num = torch.bmm(phi, state.transpose(1, 2))  # [BH, n, Dv+1]
            if softmax:
                # Rows get the rescale factor f_i; the key eps part (apart from it) rides in the
                # scores inside the chunk and in eps sum_q_i total for the earlier chunks.
                f = torch.exp2((m_prev - mi).clamp_max_(cap))[..., None]  # [BH, n, 1]
                sq = torch.sum(phi, -1, keepdim=True, out=sqc[c])
                num.mul_(f).addcmul_(sq, total, value=eps)
                scores.mul_(f).add_(sq, alpha=eps)
                totals[c] = total
                total = total + v1c.sum(1, keepdim=True)
            num.baddbmm_(scores.tril_(), v1c)
            dn = denc[c].copy_(num[..., dv])
            # no real key yet: num is exactly 0 there, and 0 / tiny = 0
            torch.div(num[..., :dv], dn.clamp_min(tiny)[..., None], out=outc[c])
            state.baddbmm_(v1c.transpose(1, 2), g)
        ctx.eps, ctx.chunk, ctx.softmax = eps, chunk, softmax
        saved = (q, k, v, w, mask, states, totals, out, den, sum_q, saved_scores)
        if softmax:
            saved += (knorm, run, src)
        ctx.save_for_backward(*saved)
        return out

    @staticmethod
    def backward(ctx, g_out):
        eps, chunk, softmax = ctx.eps, ctx.chunk, ctx.softmax
        q, k, v, w, mask, states, totals, out, den, sum_q, saved_scores, *stab = ctx.saved_tensors
        bh, length, d = q.shape
        dv = v.shape[-1]
        m = w.shape[0]
        n_chunks = states.shape[0]
        ws = scaled_projection(w, d, softmax)
        wt, we = feature_projection(w, d, softmax).expand(bh, d, m), ws.expand(bh, m, d)
        g_out = g_out.contiguous()
        work = q.new_empty(5, bh * chunk * m)
        # The input gradients of a chunk are made in contiguous buffers and then copied into
        # place: GEMMs writing into [:, chunk] slices of [BH, L, .] ran 1.5-2x slower.
        work_in = q.new_empty(2, bh * chunk * d)
        s_buf = q.new_empty(bh, dv + 1, m)  # the rescaled state of the current chunk (transposed)
        g_q, g_k = torch.empty_like(q), torch.empty_like(k)
        g_v = torch.empty_like(v)
        v1_buf = q.new_empty(bh, chunk, dv + 1)
        gv1_buf = q.new_empty(bh, chunk, dv + 1)
        gn_buf = q.new_empty(bh, chunk, dv + 1)
        g_t = q.new_zeros(bh, dv + 1, m)  # dL/dT_c^T, from the later chunks
        inv = inverse_den(den)  # for gn = dL/d[num, den]
        chunks = [
            _chunks(t, chunk, n_chunks) for t in (q, k, v, mask, g_out, out, inv, g_q, g_k, g_v)
        ]
        qc, kc, vc, mc, goc, outc, invc, gqc, gkc, gvc = chunks
        # Row-wise parts are made per chunk (full-length temporaries would cost more in page
        # faults than in arithmetic).
        # num_i = f_i A_i + eps sum_q_i cum_i, cum_i = sum_{j <= i} [v_j, 1].
        if softmax:
            g_eps_later = q.new_zeros(bh, 1, dv + 1)  # sum over the later rows of eps sum_q_i gn_i
            knorm, run, src = stab
            g_keymax = q.new_zeros(bh, length)  # dL / d (row max of key j's logits)
            g_r_next = q.new_zeros(bh)  # dL/dR_c from chunk c+1's carry
            cap = rescale_cap(q.dtype)
            ends = (torch.arange(1, n_chunks + 1, device=q.device) * chunk - 1).clamp_max(
                length - 1
            )
            r_all = run[:, ends]  # R_c [BH, N]
            carries = torch.exp2(r_all[:, :-1] - r_all[:, 1:])  # exp(R_{c-1} - R_c) [BH, N-1]
            # Per row: R_c - M_i, the rescale factor f_i and where it was capped; M_i's key.
            diff = r_all.repeat_interleave(chunk, dim=1)[:, :length] - run
            f_all = torch.exp2(diff.clamp_max(cap))[..., None]
            src_ok = (src >= 0).to(q.dtype)
            rowc = [
                _chunks(t, chunk, n_chunks)
                for t in (knorm[..., None], sum_q, f_all, diff > cap, src.clamp_min(0), src_ok)
            ]
            knc, sqc, fc, overc, srcc, okc = rowc
        for c in range(n_chunks - 1, -1, -1):
            n = qc[c].shape[1]
            views = [_rows(work[i], bh, n, m) for i in range(5)]
            p = torch.bmm(qc[c], wt, out=views[0])
            lg = torch.bmm(kc[c], wt, out=views[1])
            if softmax:
                e = p.sub_(p.amax(-1, keepdim=True)).exp2_()
                r_c = r_all[:, c, None, None]
                g = lg.sub_(knc[c]).sub_(r_c).exp2_()
            else:
                e = p.relu_()
                g = lg.relu_().add_(eps)
                if mask is not None:
                    g.mul_(mc[c][..., None])
            phi = torch.add(e, eps, out=views[2])
            if c > 0:
                s_c = states[c - 1]
                if softmax:
                    carry = carries[:, c - 1, None, None]
                    s_c = torch.mul(s_c, carry, out=s_buf)
            else:
                s_c = q.new_zeros(bh, dv + 1, m)
            v1c = _with_ones(v1_buf[:, :n], vc[c], mc[c])
            gn = ratio_grads(goc[c], outc[c], invc[c], gn_buf[:, :n])
            scores = _rows(saved_scores[c], bh, n, n)  # with f and the eps part
            gv1 = torch.bmm(scores.transpose(1, 2), gn, out=gv1_buf[:, :n])
            d_scores = torch.bmm(gn, v1c.transpose(1, 2)).tril_()  # dL/dscores
            if softmax:
                # num_i = f_i phi_i S_c + sum_{j <= i} (f_i phi_i.G_j + eps sq_i) v1_j
                #         + eps sq_i total
                sq = sqc[c]
                g_sum_q = (
                    d_scores.sum(-1, keepdim=True)  # dL/dsum_q = eps gn_i . cum_i
                    + torch.bmm(gn, totals[c].transpose(1, 2))
                ).mul_(eps)
                gv1.add_(g_eps_later)  # the eps part of the later chunks' rows
                g_eps_later.baddbmm_(sq.transpose(1, 2), gn, alpha=eps)
                # dL/dM_i through f_i = exp(R_c - M_i) is -dL/df_i f_i = -gn_i . (num_i - eps
                # sq_i cum_i) = sq_i dL/dsum_q_i, since gn_i . num_i = 0 (the ratio does not
                # change when num_i is scaled); none where f_i was capped.
                g_m = (sq * g_sum_q)[..., 0].masked_fill_(overc[c], 0.0)  # [BH, n]
                ga = gn.mul_(fc[c])  # dL/d(phi_i S_c)
                d_scores.mul_(fc[c])  # dL/d(phi_i.G_j)
            else:
                ga = gn
            gvc[c].copy_(gv1.baddbmm_(g, g_t.transpose(1, 2))[..., :dv])
            g_phi = torch.bmm(ga, s_c, out=views[3])
            g_phi.baddbmm_(d_scores, g)
            if softmax:
                g_phi.add_(g_sum_q)
            g_g = torch.bmm(d_scores.transpose(1, 2), phi, out=views[4])
            g_g.baddbmm_(v1c, g_t)
            g_s = g_t.baddbmm_(ga.transpose(1, 2), e)  # dL/dS_c^T (phi = e + eps)
            g_s.add_(ga.sum(1)[..., None], alpha=eps)
            if softmax:
                dl = g_g.mul_(g)  # dL/dl through G = exp(l - R_c)
                g_r = g_r_next - g_m.sum(-1) - dl.sum((1, 2))  # dL/dR_c
                if c > 0:
                    g_carry = s_c.mul_(g_s).sum(
                        (1, 2)
                    )  # dL/dcarry * carry (s_c is s_buf: free now)
                    g_r -= g_carry
                    g_r_next = g_carry
                    g_t = g_s.mul_(carry)
                else:
                    g_t = g_s
                g_m[:, -1] += g_r  # R_c = M at the chunk's last row
                g_keymax.scatter_add_(1, srcc[c], g_m.mul_(okc[c]))  # to the key holding M_i
                gk = torch.bmm(dl, we, out=_rows(work_in[1], bh, n, d))
                gk.addcmul_(dl.sum(-1, keepdim=True), kc[c], value=-(d**-0.5))
                dp = g_phi.mul_(e)
                sub_at_row_max(dp, e, out=views[4])
            else:
                g_t = g_s
                dl = torch.ops.aten.threshold_backward(g_g, g, eps)  # g = relu + eps (0 if padded)
                gk = torch.bmm(dl, we, out=_rows(work_in[1], bh, n, d))
                dp = torch.ops.aten.threshold_backward(g_phi, e, 0.0)
            gkc[c].copy_(gk)
            gqc[c].copy_(torch.bmm(dp, we, out=_rows(work_in[0], bh, n, d)))
        if softmax:  # the keys holding a running maximum (all later rows are in g_keymax now)
            add_key_max_grads(g_k, k, ws, g_keymax)
        if mask is not None:  # (padded keys have zero features: their g_k is 0 already)
            g_v.mul_(mask[..., None])
        return g_q, g_k, g_v, None, None, None, None, None
