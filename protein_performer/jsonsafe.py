"""The one place results become JSON-safe: JSON has no NaN or infinity, and numpy scalars
are not JSON types."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def finite(x: Any) -> Any:
    """``x`` with NaN/inf floats as None and numpy scalars as Python ones, recursively through
    dicts, lists and tuples (tuples become lists)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return finite(x.item())
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x
