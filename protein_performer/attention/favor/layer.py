"""FAVOR+ functional API (:func:`favor_attention`, :func:`favor_attention_matrix`), the
generalized-kernel path and the attention layer; the math is in the package docstring."""

from __future__ import annotations

import itertools
from typing import Callable

import torch
from torch import Tensor, nn

from protein_performer.attention import decoding
from protein_performer.attention.base import Attention
from protein_performer.attention.favor.bidirectional import bidirectional_favor
from protein_performer.attention.favor.causal import (
    CAUSAL_IMPLS,
    DEFAULT_CHUNK,
    causal_favor,
    resolve_impl,
)
from protein_performer.attention.favor.features import FeatureKernel, resolve_kernel
from protein_performer.attention.favor.projection import draw_projection, seeded_generator
from protein_performer.attention.numerics import compute_dtype
from protein_performer.attention.registry import register

# causal chunk of the CPU implementations (the C++ kernel and the loop); the chunkwise form
# (CUDA) takes its own, favor.causal.DEFAULT_CHUNK["chunkwise"]
DEFAULT_CHUNK_SIZE = DEFAULT_CHUNK["cpp"]


def favor_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    projection: Tensor,
    *,
    kernel: str | Callable[[Tensor], Tensor] | FeatureKernel = "softmax",
    causal: bool = False,
    mask: Tensor | None = None,
    chunk_size: int | None = None,
    eps: float | None = None,
    causal_impl: str = "auto",
) -> Tensor:
    """FAVOR+ attention. q, k [B, H, L, Dh], v [B, H, L, Dv], projection [m, Dh] -> [B, H, L, Dv].

    ``kernel``: "softmax" (positive random features), "relu" (Performer-ReLU) or a callable f
    for generalized features f(x W^T / sqrt(m)) + eps. ``mask`` [B, L]: True on real tokens;
    padded keys get zero features (they leave numerator and normaliser). ``eps``: None =
    the kernel's paper default (1e-6 softmax, 1e-3 relu). Computed in float32 (float64 for
    float64 inputs) with autocast disabled; returned in v's dtype. Causal softmax/ReLU:
    ``causal_impl`` auto | loop | chunkwise | cpp picks the implementation
    (:func:`favor.causal.resolve_impl`; auto: C++ on CPU, chunkwise on CUDA) and
    ``chunk_size`` None its default chunk.
    """
    if q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            f"expected q, k [B, H, L, Dh] and v [B, H, L, Dv], got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if projection.dim() != 2 or projection.shape[1] != q.shape[-1]:
        raise ValueError(f"projection must be [m, {q.shape[-1]}], got {tuple(projection.shape)}")
    if mask is not None and mask.shape != (q.shape[0], q.shape[2]):
        raise ValueError(
            f"mask must be [B, L] = {(q.shape[0], q.shape[2])}, got {tuple(mask.shape)}"
        )
    if causal_impl not in CAUSAL_IMPLS:
        raise ValueError(f"causal_impl must be one of {CAUSAL_IMPLS}, got {causal_impl!r}")
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError(
            f"chunk_size must be > 0 (or None: the implementation's), got {chunk_size}"
        )
    kern = resolve_kernel(kernel)
    eps = kern.default_eps if eps is None else float(eps)
    out_dtype = v.dtype
    dt = compute_dtype(q.dtype)
    with torch.autocast(device_type=q.device.type, enabled=False):
        q, k, v, w = (t.to(dt) for t in (q, k, v, projection))
        if mask is not None:
            mask = mask.to(torch.bool)
        if causal:
            causal_impl = resolve_impl(causal_impl, q)  # on the compute dtype (C++: fp32/fp64)
            out = _causal(q, k, v, w, kern, eps, mask, chunk_size, causal_impl)
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


def _features(q, k, w, kern: FeatureKernel, eps: float, mask: Tensor | None):
    """Generalized kernels f (plain autograd): query features f(q W^T / sqrt(m)) + eps, their
    row sums, and key features f(k W^T / sqrt(m)) without eps (zero on padded keys). The
    common factor of phi(q).phi(k) is dropped: it cancels in the attention ratio."""
    wt = w.transpose(-1, -2) * w.shape[0] ** -0.5
    phi_q = kern.fn(q @ wt) + eps
    g_k = kern.fn(k @ wt)
    if mask is not None:
        g_k = g_k * mask[:, None, :, None].to(g_k.dtype)
    return phi_q, phi_q.sum(-1, keepdim=True), g_k


def _flat_heads(fn, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, *args) -> Tensor:
    """Run fn(q, k, v, *, mask, ...) on [B*H, L, .] tensors (mask repeated per head)."""
    b, h, length, _ = q.shape
    flat = [t.reshape(b * h, length, t.shape[-1]).contiguous() for t in (q, k, v)]
    bmask = None if mask is None else mask.repeat_interleave(h, dim=0)  # [B*H, L]
    return fn(*flat, bmask, *args).view(b, h, length, v.shape[-1])


def _bidirectional(q, k, v, w, kern: FeatureKernel, eps: float, mask: Tensor | None) -> Tensor:
    if kern.is_softmax or kern.fn is torch.relu:
        return _flat_heads(
            lambda q, k, v, mask: bidirectional_favor(q, k, v, w, mask, eps, kern.is_softmax),
            q,
            k,
            v,
            mask,
        )
    phi_q, _, g_k = _features(q, k, w, kern, eps, mask)
    v1 = _with_ones(v, mask)  # [B, H, L, Dv+1]
    # phi(K)^T [V, 1] with phi(k) = g_k + eps: the eps part is a rank-one term.
    state = g_k.transpose(-1, -2) @ v1 + eps * v1.sum(-2, keepdim=True)  # [B, H, m, Dv+1]
    return _divide(phi_q @ state)


def _causal(
    q, k, v, w, kern: FeatureKernel, eps: float, mask: Tensor | None, chunk: int | None, impl: str
) -> Tensor:
    if kern.is_softmax or kern.fn is torch.relu:
        return _flat_heads(
            lambda q, k, v, mask: causal_favor(q, k, v, w, mask, eps, chunk, kern.is_softmax, impl),
            q,
            k,
            v,
            mask,
        )
    # Generalized kernels: no stabiliser; all chunks at once (see :class:`_CausalChunks`),
    # with the chunk of the implementation auto picked (chunk-parallel like chunkwise).
    chunk = DEFAULT_CHUNK[impl] if chunk is None else chunk
    b, h, length, _ = q.shape
    dv = v.shape[-1]
    m = w.shape[0]
    chunk = min(chunk, length)
    n = -(-length // chunk)  # number of chunks
    pad = n * chunk - length
    phi_q, sum_q, kg = _features(q, k, w, kern, eps, mask)
    v1 = _with_ones(v, mask)  # [B, H, L, Dv+1]
    # Padded positions: zero features and values, so they change nothing.
    qc = nn.functional.pad(phi_q, (0, 0, 0, pad)).view(b, h, n, chunk, m)
    kc = nn.functional.pad(kg, (0, 0, 0, pad)).view(b, h, n, chunk, m)
    vc = nn.functional.pad(v1, (0, 0, 0, pad)).view(b, h, n, chunk, dv + 1)
    num = _CausalChunks.apply(qc, kc, vc)  # [B, H, N, C, Dv+1]
    num = num.view(b, h, n * chunk, dv + 1)[:, :, :length]
    # eps part of the key features: eps * sum_f phi(q_i)_f * sum_{j <= i} [v_j, 1]
    num = num + (eps * sum_q) * torch.cumsum(v1, dim=-2)
    return _divide(num)


class _CausalChunks(torch.autograd.Function):
    """Y_c = phi(Q_c) P_c + tril(phi(Q_c) phi(K_c)^T) V_c for all chunks c at once (generalized
    kernels; the softmax and ReLU kernels take :mod:`favor.causal`).

    qc, kc [B, H, N, C, m], vc [B, H, N, C, E]; P_c = sum_{c' < c} K_c'^T V_c' (exclusive
    cumsum of the chunk states). Keeps the per-chunk prefix states (O((L/C) m E)) besides the
    inputs; the [C, C] scores are recomputed in backward, whose state gradients are the reverse
    exclusive cumsum of the per-chunk ones.
    """

    @staticmethod
    def forward(ctx, qc: Tensor, kc: Tensor, vc: Tensor):
        b, h, n, c, m = qc.shape
        e = vc.shape[-1]
        q3, k3, v3 = (t.reshape(b * h * n, c, t.shape[-1]) for t in (qc, kc, vc))
        states = torch.bmm(k3.transpose(1, 2), v3).view(b, h, n, m, e)
        prefix = torch.zeros_like(states)
        torch.cumsum(states[:, :, :-1], dim=2, out=prefix[:, :, 1:])
        scores = torch.bmm(q3, k3.transpose(1, 2)).tril_()  # [BHN, C, C]
        out = torch.bmm(q3, prefix.view(b * h * n, m, e)).baddbmm_(scores, v3)
        ctx.save_for_backward(qc, kc, vc, prefix)
        return out.view(b, h, n, c, e)

    @staticmethod
    def backward(ctx, g_out: Tensor):
        qc, kc, vc, prefix = ctx.saved_tensors
        b, h, n, c, m = qc.shape
        e = vc.shape[-1]
        bhn = b * h * n
        q3, k3, v3 = (t.reshape(bhn, c, t.shape[-1]) for t in (qc, kc, vc))
        g3 = g_out.reshape(bhn, c, e).contiguous()
        g_prefix = torch.bmm(q3.transpose(1, 2), g3).view(b, h, n, m, e)
        # g_S_c = sum_{c' > c} g_P_c'
        g_states = torch.zeros_like(g_prefix)
        g_states[:, :, :-1] = torch.cumsum(g_prefix[:, :, 1:].flip(2), dim=2).flip(2)
        gs3 = g_states.view(bhn, m, e)
        scores = torch.bmm(q3, k3.transpose(1, 2)).tril_()
        g_v = torch.bmm(scores.transpose(1, 2), g3).baddbmm_(k3, gs3)
        g_scores = torch.bmm(g3, v3.transpose(1, 2)).tril_()
        g_q = torch.bmm(g3, prefix.view(bhn, m, e).transpose(1, 2)).baddbmm_(g_scores, k3)
        g_k = torch.bmm(g_scores.transpose(1, 2), q3).baddbmm_(v3, gs3.transpose(1, 2))
        return g_q.view_as(qc), g_k.view_as(kc), g_v.view_as(vc)


def favor_attention_matrix(
    q: Tensor,
    k: Tensor,
    projection: Tensor,
    *,
    kernel: str | Callable[[Tensor], Tensor] | FeatureKernel = "softmax",
    causal: bool = False,
    mask: Tensor | None = None,
    chunk_size: int | None = None,
    eps: float | None = None,
    causal_impl: str = "auto",
) -> Tensor:
    """The [B, H, L, L] matrix implied by FAVOR+: normalised phi(Q) phi(K)^T (causally masked).

    Obtained as the paper does, by running :func:`favor_attention` on one-hot values
    (V = I_L), so it is exactly what the fast path computes. O(L^2 m): short sequences only.
    """
    b, h, length, _ = q.shape
    dt = compute_dtype(q.dtype)
    eye = torch.eye(length, dtype=dt, device=q.device).expand(b, h, length, length)
    return favor_attention(
        q.to(dt),
        k.to(dt),
        eye,
        projection,
        kernel=kernel,
        causal=causal,
        mask=mask,
        chunk_size=chunk_size,
        eps=eps,
        causal_impl=causal_impl,
    )


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
    linear_memory = True

    def __init__(self, cfg, d_model: int, n_heads: int) -> None:
        super().__init__(cfg, d_model, n_heads)
        self.kernel = resolve_kernel(self.kernel_name)
        self.eps = self.kernel.default_eps if cfg.kernel_eps is None else cfg.kernel_eps
        self.chunk_size = cfg.chunk_size
        self.causal_impl = cfg.causal_impl
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
        return favor_attention(
            q,
            k,
            v,
            self.projection,
            kernel=self.kernel,
            causal=self.causal,
            mask=mask,
            chunk_size=self.chunk_size,
            eps=self.eps,
            causal_impl=self.causal_impl,
        )

    def attend_matrix(self, q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
        return favor_attention_matrix(
            q,
            k,
            self.projection,
            kernel=self.kernel,
            causal=self.causal,
            mask=mask,
            chunk_size=self.chunk_size,
            eps=self.eps,
            causal_impl=self.causal_impl,
        )

    def _init_state(self, batch: int, device: torch.device, dtype: torch.dtype):
        return decoding.favor_init_state(
            batch, self.n_heads, self.projection.shape[0], self.head_dim, device, dtype
        )

    def decode(self, q: Tensor, k: Tensor, v: Tensor, state) -> Tensor:
        return decoding.favor_step(
            q, k, v, self.projection, state, kernel_fn=self.kernel.fn, eps=self.eps
        )


@register("favor_softmax")
class FavorSoftmaxAttention(FavorAttention):
    """FAVOR+ with positive random features of the softmax kernel."""

    kernel_name = "softmax"


@register("favor_relu")
class FavorReluAttention(FavorAttention):
    """Performer-ReLU: generalized features relu(x W^T / sqrt(m)) + eps."""

    kernel_name = "relu"
