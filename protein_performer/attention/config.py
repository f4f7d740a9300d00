"""Typed configuration of one attention layer; validated once, at construction."""

from __future__ import annotations

from dataclasses import dataclass

#: random projections of FAVOR+ (``feature_type``; favor/projection.py draws them)
FEATURE_TYPES = ("orthogonal", "iid")
#: causal FAVOR+ implementations (``causal_impl``; favor/causal.py resolves them)
CAUSAL_IMPLS = ("auto", "loop", "chunkwise", "cpp")


@dataclass
class AttentionConfig:
    """Options of every attention kind; each kind reads the fields it needs.

    ``kind`` is resolved (and checked) through
    :data:`protein_performer.attention.registry.ATTENTION_REGISTRY` when a layer or a
    :class:`~protein_performer.model.config.ModelConfig` is built.
    ``causal`` and ``max_length`` belong to the model that holds the layer: left unset (None)
    here, :class:`~protein_performer.model.config.ModelConfig` fills them from its own; a
    layer built alone (:func:`~protein_performer.attention.build_attention`) is given them.
    """

    kind: str = "favor_softmax"
    causal: bool | None = None  # None: the holding model's (model.causal)
    dropout: float = 0.0
    # FAVOR+ (paper defaults: 256 orthogonal features, chi norms, softmax stabiliser 1e-6,
    # ReLU kernel epsilon 1e-3)
    nb_features: int = 256
    ortho_scaling: int = 0  # 0: rows scaled by chi-distributed norms; 1: by sqrt(dim)
    feature_type: str = "orthogonal"  # orthogonal | iid
    redraw_interval: int = 1000  # training steps between feature redraws; 0 = never
    kernel_eps: float | None = None  # None: the kernel's paper default
    # causal FAVOR+: tokens per chunk; None = the implementation's (favor.causal.DEFAULT_CHUNK:
    # 64 for the CPU loop and C++ kernel, 128 for the chunkwise form)
    chunk_size: int | None = None
    # causal FAVOR+ implementation: auto (C++ kernel on CPU, chunkwise on CUDA) | loop |
    # chunkwise | cpp (favor.causal.resolve_impl)
    causal_impl: str = "auto"
    seed: int = 0  # base seed of feature draws: draw = f(seed, layer, step)
    # AFT (Zhai et al. 2021)
    aft_window: int = 32  # AFT-local: bias window s
    aft_factor_dim: int = 64  # AFT-full: rank of factorised bias u_t . v_t'
    aft_full_bias: bool = False  # AFT-full: a full learned L x L bias (short lengths only)
    aft_conv_kernel: int = 31  # AFT-conv: depthwise kernel size
    # longest sequence the layer must accept; None: the holding model's (model.max_length)
    max_length: int | None = None

    def __post_init__(self) -> None:
        _positive(self, "nb_features", "aft_factor_dim", "aft_conv_kernel")
        for name in ("chunk_size", "max_length"):
            if getattr(self, name) is not None:
                _positive(self, name)
        if self.causal is not None and not isinstance(self.causal, bool):
            raise ValueError(f"attention.causal must be true, false or unset, got {self.causal!r}")
        if self.causal_impl not in CAUSAL_IMPLS:
            raise ValueError(
                f"attention.causal_impl must be one of {CAUSAL_IMPLS}, got {self.causal_impl!r}"
            )
        _non_negative(self, "redraw_interval", "aft_window")
        if self.ortho_scaling not in (0, 1):
            raise ValueError(f"attention.ortho_scaling must be 0 or 1, got {self.ortho_scaling}")
        if self.feature_type not in FEATURE_TYPES:
            raise ValueError(
                f"attention.feature_type must be one of {FEATURE_TYPES}, got {self.feature_type!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"attention.dropout must be in [0, 1), got {self.dropout}")
        if self.kernel_eps is not None and self.kernel_eps < 0:
            raise ValueError(f"attention.kernel_eps must be >= 0, got {self.kernel_eps}")


def _positive(cfg: AttentionConfig, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value <= 0:
            raise ValueError(f"attention.{name} must be > 0, got {value}")


def _non_negative(cfg: AttentionConfig, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value < 0:
            raise ValueError(f"attention.{name} must be >= 0, got {value}")
