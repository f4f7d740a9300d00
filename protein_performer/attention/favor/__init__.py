"""FAVOR+ linear attention (Choromanski et al., ICLR 2021): functional core and module.

Bidirectional: out = D^-1 (phi(Q) (phi(K)^T V)), D = diag(phi(Q) (phi(K)^T 1)).

Causal, chunk-wise: the sequence is cut into chunks of C tokens. Inside a chunk the masked
quadratic form (phi(Q_c) phi(K_c)^T * tril) V_c is used; between chunks a running [m, d+1]
state S = sum phi(k) [v, 1]^T is carried, so memory is linear in L for forward and backward
alike (no O(L m d) cumulative sum is ever built).

Where the code lives: ``layer.py`` has the functional API and the attention layer;
``kernels.py`` the kernel objects (softmax, ReLU, generalized f), chosen once, each running its
own paths: generalized kernels f plain autograd (``generalized.py``; causal: all chunks at
once), the softmax and ReLU kernels hand-written autograd Functions that never build an [L, m]
tensor: ``bidirectional.py`` (blocks of rows), ``causal.py`` (the implementation switch, and a
loop over chunks carrying the state, backward a reverse loop), ``causal_cpu.py`` +
``csrc/favor_causal.cpp`` (the same loop in C++ for CPU, one head per thread) and
``chunkwise.py`` (the chunk-parallel causal form for GPUs, plain autograd). ``features.py``:
the feature maps phi in readable form; ``projection.py``: the random projections W;
``common.py``: pieces shared by the fast paths; ``naive.py``: the float64 quadratic
references of the tests.

Padding: padded keys get zero features and zero values, so they leave both the numerator
and the normaliser (and never set the stabiliser).

Causal softmax stabiliser without lookahead. Query i uses the key features
    phi_i(k_j) = (exp(l_j - M_i) + eps) / sqrt(m),   l_j = w.k_j' - |k_j'|^2/2,
with M_i = max_{j <= i, f} l_jf, the running maximum over real keys up to i (the
bidirectional form uses the maximum over all keys). Since the eps term does not scale
with exp(-M_i), the numerator splits into
    exp(R_c - M_i) * phi(q_i).sum_j exp(l_j - R_c)/sqrt(m) v_j
      +  eps/sqrt(m) * sum(phi(q_i)) * sum_{j<=i} v_j,
where R_c is the running maximum at the end of q_i's chunk: keys are exponentiated against
R_c (never overflow), the carried state is rescaled by exp(R_{c-1} - R_c) between chunks, and
the per-query factor exp(R_c - M_i) restores the exact no-lookahead value. For float safety
the factor is capped at exp(60) (float32; exp(600) in float64): only if the key logits jump by
more than 60 within one chunk does query i use max(M_i, R_c - 60), which looks ahead inside
its chunk; any realistic input stays exact.
"""

from protein_performer.attention.favor.layer import (
    DEFAULT_CHUNK_SIZE,
    FavorAttention,
    FavorReluAttention,
    FavorSoftmaxAttention,
    favor_attention,
    favor_attention_matrix,
)
from protein_performer.attention.favor.projection import (
    draw_projection,
    gaussian_orthogonal_random_matrix,
    iid_gaussian_random_matrix,
    seeded_generator,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FavorAttention",
    "FavorReluAttention",
    "FavorSoftmaxAttention",
    "draw_projection",
    "favor_attention",
    "favor_attention_matrix",
    "gaussian_orthogonal_random_matrix",
    "iid_gaussian_random_matrix",
    "seeded_generator",
]
