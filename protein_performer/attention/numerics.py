"""Numeric constants and the compute dtype shared by the attention kinds (FAVOR+, AFT, decoding)."""

from __future__ import annotations

import math

import torch

# Floor of the running key stabilisers (keeps exp finite before any real key; see favor/).
STAB_FLOOR = -1e4
# The softmax kernels hold their logits in base 2 (times log2 e, folded into the projection)
# and exponentiate with exp2: torch's CPU exp2 kernel is ~4x faster than its exp (22 vs 82 us
# for 262k float32 values), same accuracy up to the rounding of the folded factor, and
# exp2(0) is exactly 1 (see favor.common.sub_at_row_max).
LOG2E = 1.0 / math.log(2.0)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (tests); anything else runs in float32 (exp overflows fp16)."""
    return torch.float64 if dtype == torch.float64 else torch.float32
