"""Where a shard set lives: a local directory, ``file://``, or a URL.

``http(s)://``, ``gs://``, ``hf://``, ``pipe:`` go through :func:`webdataset.gopen`; other
schemes (``s3://``, ``az://``, ...) through fsspec when its backend is installed
(``pip install s3fs`` for S3).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

from protein_performer.errors import InputError


class ShardError(InputError):
    """A location that is not a (complete, compatible) shard set."""


def is_url(location: str | os.PathLike) -> bool:
    """True for ``scheme://...`` and ``pipe:`` locations other than ``file://``."""
    s = str(location)
    if s.startswith("pipe:"):
        return True
    scheme = urlparse(s).scheme
    return len(scheme) > 1 and scheme != "file" and "://" in s


def local_path(location: str) -> Path:
    """The path of a local location (a directory or ``file://...``)."""
    return Path(urlparse(location).path) if location.startswith("file://") else Path(location)


def join(location: str, name: str) -> str:
    """``location/name`` for directories and URLs alike."""
    return (
        location.rstrip("/") + "/" + name if is_url(location) else str(local_path(location) / name)
    )


def open_binary(location: str) -> IO[bytes]:
    """A readable binary stream of a local file or URL (see the module docstring)."""
    if not is_url(location):
        return open(local_path(location), "rb")
    import webdataset as wds

    scheme = "pipe" if location.startswith("pipe:") else urlparse(location).scheme
    if scheme in wds.gopen_schemes:
        return wds.gopen(location, "rb")
    try:
        import fsspec

        return fsspec.open(location, "rb").open()
    except (ImportError, ValueError) as exc:
        raise ShardError(
            f"{location}: cannot open {scheme}:// ({exc}); install the fsspec "
            f"backend for it (s3fs for s3://, gcsfs for gs://, adlfs for az://)"
        ) from exc
