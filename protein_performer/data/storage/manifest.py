"""The directory of a store or a shard set, and its manifest: the directory is claimed before
writing, the manifest is written last and atomically (its presence marks a complete set),
and checked when the set is opened."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protein_performer.data.alphabet import ALPHABET
from protein_performer.errors import OutputExistsError


def claim_out_dir(
    out: Path,
    overwrite: bool,
    *,
    manifest: str,
    is_ours: Callable[[str], bool],
    kind: str,
    command: str,
) -> bool:
    """Make sure ``out`` can take a new ``kind`` (its files named by ``is_ours``, plus
    ``manifest``); returns True when this call created the directory.

    An empty directory is taken; one holding only our files but no manifest (``command``
    killed before it wrote the manifest) or a complete set is emptied of our files with
    ``overwrite`` and refused without; any other non-empty directory is refused.
    """
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory (choose another --out)")
    if not out.exists():
        out.mkdir(parents=True)
        return True
    entries = list(out.iterdir())
    ours = [p for p in entries if p.name in (manifest, manifest + ".tmp") or is_ours(p.name)]
    complete = (out / manifest).exists()
    if not entries:
        return False
    if len(ours) == len(entries) and not complete:
        if not overwrite:
            raise OutputExistsError(
                f"{out}: holds a partial {kind} (no {manifest}: an interrupted {command}); "
                "pass --overwrite (overwrite=True) to replace it, or choose another --out"
            )
    elif complete:
        if not overwrite:
            raise OutputExistsError(
                f"{out}: a {kind} already exists (pass --overwrite (overwrite=True) to "
                "replace it, or choose another --out)"
            )
    else:
        raise OutputExistsError(f"{out}: directory exists and is not empty (choose another --out)")
    for p in ours:
        p.unlink()
    return False


def write_manifest(out: Path, name: str, manifest: dict[str, Any]) -> None:
    """Write ``out/name`` through a temporary file, so that it exists only when complete."""
    tmp = out / (name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, out / name)


def check_manifest(
    m: dict, fmt: str, version: int, where: str, hint: str, error: type[ValueError]
) -> None:
    """Raise ``error`` unless manifest ``m`` has this format, version and alphabet."""
    if m.get("format") != fmt or m.get("version") != version:
        raise error(
            f"{where}: format {m.get('format')!r} version {m.get('version')!r}, this "
            f"code reads {fmt!r} version {version}" + hint
        )
    if m.get("alphabet") != list(ALPHABET.tokens):
        raise error(f"{where}: built with a different alphabet than this code's" + hint)
