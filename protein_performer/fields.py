"""Check plain values (a YAML section, a checkpoint's hyper-parameters) against a config
dataclass's fields, so that a typo fails naming the field instead of deep in a constructor."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any


def check_fields(
    cls: type, section: str, values: dict[str, Any], reserved: Iterable[str] = ()
) -> None:
    """Raise ``ValueError`` naming the keys of ``values`` that are not fields of ``cls``
    (``reserved``: fields the caller sets itself, so they may not come from ``values``)."""
    allowed = {f.name for f in dataclasses.fields(cls)} - set(reserved)
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"{section}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
