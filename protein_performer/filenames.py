"""The one sanitiser of labels (run labels, input file names) used as file or directory names."""

from __future__ import annotations


def safe_name(label: str, default: str, limit: int | None = None) -> str:
    """``label`` with every character other than a letter, a digit or one of ``._=-`` replaced
    by ``_``, cut to ``limit`` characters; ``default`` if nothing is left."""
    name = "".join(c if c.isalnum() or c in "._=-" else "_" for c in label)
    return name[:limit] or default
