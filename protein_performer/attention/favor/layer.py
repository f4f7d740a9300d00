"""FAVOR+ functional API (:func:`favor_attention`, :func:`favor_attention_matrix`) and the
attention layer; the math is in the package docstring, the paths in :mod:`favor.kernels`."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor

from protein_performer.attention.base import Attention
from protein_performer.attention.config import CAUSAL_IMPLS
from protein_performer.attention.favor import decoding
from protein_performer.attention.favor.causal import DEFAULT_CHUNK, resolve_impl
from protein_performer.attention.favor.kernels import RELU, SOFTMAX, FeatureKernel, resolve_kernel
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
            out = kern.causal(q, k, v, w, eps, mask, chunk_size, causal_impl)
        else:
            out = kern.bidirectional(q, k, v, w, eps, mask)
    return out.to(out_dtype)


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

    kernel: FeatureKernel = SOFTMAX
    linear_memory = True

    def __init__(self, cfg, d_model: int, n_heads: int) -> None:
        super().__init__(cfg, d_model, n_heads)
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
        """Take an explicit id (the model's block index: ids then do not depend on how many
        layers a process built before) and redraw the step-0 projection from
        (cfg.seed, layer_id, 0)."""
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
        return self.kernel.decode(q, k, v, self.projection, state, self.eps)

    def attend_suffix(self, q: Tensor, k: Tensor, v: Tensor, state) -> Tensor:
        return self.kernel.suffix(q, k, v, self.projection, state, self.eps)


@register("favor_softmax")
class FavorSoftmaxAttention(FavorAttention):
    """FAVOR+ with positive random features of the softmax kernel."""

    kernel = SOFTMAX


@register("favor_relu")
class FavorReluAttention(FavorAttention):
    """Performer-ReLU: generalized features relu(x W^T / sqrt(m)) + eps."""

    kernel = RELU
