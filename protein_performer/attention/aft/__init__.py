"""Attention Free Transformer variants (Zhai et al., 2021): AFT-full, -local, -simple, -conv.

Every channel c of every head is an independent weighted average over keys::

    Y_t = sigmoid(Q_t) * sum_t' exp(K_t' + w_tt') V_t' / sum_t' exp(K_t' + w_tt')

with a position bias ``w`` that each variant parameterises differently:

* ``aft_full``:   w = u_t . v_t' (u, v: [max_length, aft_factor_dim]; u random, v zero, so
  w starts at 0), or with ``aft_full_bias`` a full learned [max_length, max_length] table.
  Shared by all heads and channels. Computed as exp(w) matrix products over row chunks.
* ``aft_local``:  a learned w_tt' for |t - t'| < aft_window, stored as a band table
  [max_length, 2 * aft_window - 1] (w[t, o + s - 1] = w_{t, t+o}); 0 outside the window (not
  -inf: outside keys keep weight exp(K)). Global sums + a banded correction computed as block
  matrix products: O(L s d) time, memory linear in L.
* ``aft_simple``: no bias. Bidirectional: a softmax over keys per channel. Causal: a prefix
  softmax, computed as a chunked scan with a running maximum (O(L d) memory).
* ``aft_conv``:   per head a learned kernel of ``aft_conv_kernel`` relative offsets (centred;
  causal: offsets -(K-1)..0), 0 outside; global sums + a depthwise conv of exp(w) - 1.

Causal variants use keys t' <= t. Padded keys (mask False) get exp(K) = 0. Stabilisation:
K is shifted by its per-channel maximum over real keys (aft_simple causal: by a running maximum
per chunk) and w by its per-row maximum (clamped at >= 0 where 0-bias keys exist); both shifts
cancel in the ratio. The maxima are detached (the result does not depend on them).
Denominators are clamped at the smallest normal float, so a row without visible real keys (or,
in causal aft_full/local/conv, whose visible keys all lie ~80 below the channel's later maximum
in float32) gives 0, never NaN. Under autocast everything runs in float32.
Known float32 limit of the global-sum + correction form (local, conv): a strongly negative
in-window bias (w << 0) on a key that dominates the global sum cancels it, losing relative
precision in that row (a few % at |w| ~ 200 with K spread ~ 100 nats); realistic ranges are fine.

``attend_matrix`` returns, per head, the average over the head's Dh channels of the per-channel
weight matrices A^c[t, t'] = exp(K_t'^c + w_tt') / sum_t'' exp(K_t''^c + w_tt''); rows sum to 1.
The per-channel matrices (:meth:`AFTAttention.attend_matrix_per_channel`, [B, H, Dh, L, L])
reproduce the output before gating: Y_t^c / sigmoid(Q_t^c) = sum_t' A^c[t, t'] V_t'^c.

Where the code lives: ``layers.py`` (base, simple, full, local), ``conv.py`` (AFT-conv and its
banded core), ``scan.py`` (the causal AFT-simple scan), ``common.py`` (shared pieces) and
``naive.py`` (the float64 quadratic references of the tests).
"""

from protein_performer.attention.aft.conv import AFTConv
from protein_performer.attention.aft.layers import AFTAttention, AFTFull, AFTLocal, AFTSimple
from protein_performer.attention.aft.scan import causal_prefix_softmax

__all__ = ["AFTAttention", "AFTConv", "AFTFull", "AFTLocal", "AFTSimple", "causal_prefix_softmax"]
