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


def from_shared_fields(cls: type, source: Any, **values: Any) -> Any:
    """``cls(**values)`` plus every field of the dataclass ``source`` that ``cls`` has too,
    by name (a study's ``seed``, ``device``... handed on to a step's options)."""
    names = {f.name for f in dataclasses.fields(cls)} & {f.name for f in dataclasses.fields(source)}
    return cls(**{n: getattr(source, n) for n in sorted(names - set(values))}, **values)
