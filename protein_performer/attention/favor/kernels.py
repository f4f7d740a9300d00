"""The FAVOR+ kernels as objects: each knows its paper eps and runs its own paths.

The kernel is chosen once (the layer's kind, or :func:`resolve_kernel` on the functional API's
argument) and from then on is a :class:`FeatureKernel` whose methods compute attention:
:class:`SoftmaxKernel` (positive random features with their stabiliser) and :class:`ReluKernel`
run the hand-written autograd Functions, :class:`GeneralizedKernel` (any f) plain autograd.
No path tests which kernel it was given.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from protein_performer.attention.favor import decoding, generalized
from protein_performer.attention.favor.bidirectional import (
    bidirectional_relu,
    bidirectional_softmax,
)
from protein_performer.attention.favor.causal import DEFAULT_CHUNK, causal_favor
from protein_performer.attention.favor.common import flat_heads
from protein_performer.attention.favor.features import RELU_EPS, SOFTMAX_EPS


class FeatureKernel:
    """A kernel of FAVOR+. Tensors are [B, H, L, .] in the compute dtype, ``w`` [m, d],
    ``mask`` [B, L] (True = real); outputs [B, H, L, Dv]."""

    name: str
    default_eps: float

    def bidirectional(
        self, q: Tensor, k: Tensor, v: Tensor, w: Tensor, eps: float, mask: Tensor | None
    ) -> Tensor:
        raise NotImplementedError

    def causal(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        w: Tensor,
        eps: float,
        mask: Tensor | None,
        chunk: int | None,
        impl: str,
    ) -> Tensor:
        """``impl``: the resolved causal implementation (:func:`favor.causal.resolve_impl`);
        ``chunk``: None = its default (:data:`favor.causal.DEFAULT_CHUNK`)."""
        raise NotImplementedError

    def decode(
        self, q: Tensor, k: Tensor, v: Tensor, w: Tensor, state: decoding.FavorState, eps: float
    ) -> Tensor:
        """One causal token, [B, H, 1, .].

        See :mod:`protein_performer.attention.favor.decoding`.
        """
        raise NotImplementedError

    def suffix(
        self, q: Tensor, k: Tensor, v: Tensor, w: Tensor, state: decoding.FavorState, eps: float
    ) -> Tensor:
        """n causal tokens after the prefix in ``state`` at once, [B, H, n, .]; ``state``
        untouched (see :mod:`protein_performer.attention.favor.decoding`)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _fused_causal(q, k, v, w, eps, mask, chunk, impl, *, softmax: bool) -> Tensor:
    """The hand-written causal paths (C++ / loop / chunkwise) of the softmax or ReLU kernel."""

    def run(q, k, v, mask):
        return causal_favor(q, k, v, w, mask, eps, chunk, softmax, impl)

    return flat_heads(run, q, k, v, mask)


class SoftmaxKernel(FeatureKernel):
    """Positive random features of the softmax kernel, stabilised by running maxima."""

    name = "softmax"
    default_eps = SOFTMAX_EPS

    def bidirectional(self, q, k, v, w, eps, mask):
        def run(q, k, v, mask):
            return bidirectional_softmax(q, k, v, w, mask, eps)

        return flat_heads(run, q, k, v, mask)

    def causal(self, q, k, v, w, eps, mask, chunk, impl):
        return _fused_causal(q, k, v, w, eps, mask, chunk, impl, softmax=True)

    def decode(self, q, k, v, w, state, eps):
        return decoding.favor_softmax_step(q, k, v, w, state, eps=eps)

    def suffix(self, q, k, v, w, state, eps):
        return decoding.favor_softmax_suffix(q, k, v, w, state, eps=eps)


class GeneralizedKernel(FeatureKernel):
    """Generalized features f(x W^T / sqrt(m)) + eps for any f, through plain autograd."""

    default_eps = RELU_EPS

    def __init__(self, fn: Callable[[Tensor], Tensor], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "custom")

    def bidirectional(self, q, k, v, w, eps, mask):
        return generalized.bidirectional_generalized(q, k, v, w, self.fn, eps, mask)

    def causal(self, q, k, v, w, eps, mask, chunk, impl):
        # chunk-parallel like chunkwise, with the chunk of the implementation auto picked
        chunk = DEFAULT_CHUNK[impl] if chunk is None else chunk
        return generalized.causal_generalized(q, k, v, w, self.fn, eps, mask, chunk)

    def decode(self, q, k, v, w, state, eps):
        return decoding.favor_generalized_step(q, k, v, w, state, fn=self.fn, eps=eps)

    def suffix(self, q, k, v, w, state, eps):
        return decoding.favor_generalized_suffix(q, k, v, w, state, fn=self.fn, eps=eps)


class ReluKernel(GeneralizedKernel):
    """Performer-ReLU, f = relu: the hand-written paths (no [L, m] tensor)."""

    def __init__(self) -> None:
        super().__init__(torch.relu, "relu")

    def bidirectional(self, q, k, v, w, eps, mask):
        def run(q, k, v, mask):
            return bidirectional_relu(q, k, v, w, mask, eps)

        return flat_heads(run, q, k, v, mask)

    def causal(self, q, k, v, w, eps, mask, chunk, impl):
        return _fused_causal(q, k, v, w, eps, mask, chunk, impl, softmax=False)


SOFTMAX = SoftmaxKernel()
RELU = ReluKernel()
KERNELS: dict[str, FeatureKernel] = {"softmax": SOFTMAX, "relu": RELU}


def resolve_kernel(kernel: str | Callable[[Tensor], Tensor] | FeatureKernel) -> FeatureKernel:
    """A kernel name in :data:`KERNELS`, a FeatureKernel, or a callable f (generalized, eps
    1e-3; torch.relu is the ReLU kernel)."""
    if isinstance(kernel, FeatureKernel):
        return kernel
    if isinstance(kernel, str):
        if kernel not in KERNELS:
            raise ValueError(
                f"kernel must be one of {sorted(KERNELS)} or a callable, got {kernel!r}"
            )
        return KERNELS[kernel]
    if kernel is torch.relu:
        return RELU
    if callable(kernel):
        return GeneralizedKernel(kernel)
    raise TypeError(f"kernel must be a name, a FeatureKernel or a callable, got {type(kernel)}")
