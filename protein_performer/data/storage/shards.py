"""Streaming shards: a corpus as WebDataset tar files, readable from a directory or a URL.

Layout of a shard set (format version 1)::

    shard-000000.tar ...   WebDataset tar shards (~``shard_bytes`` each); every sample is a
                           *block* of up to ``block_proteins`` consecutive proteins:
                             <key>.tok  uint8 residue tokens of the block, concatenated
                             <key>.off  little-endian int64 [n + 1] offsets into .tok
                             <key>.acc  n accessions, one per line
                           <key> is the block's first protein index, 9+ digits
    shards.json            counts, alphabet, residue counts, block size, and per shard its
                           name, proteins, residues and bytes (written last: its presence
                           marks a complete set)

Blocks, not one sample per protein: a tar member costs >= 1 KiB (header + padding) and
per-sample decoding dominates for ~350-residue proteins; per-protein samples made the set
12x larger and 200x slower to read than blocks of 1024 (``scripts/bench_streaming.py``).

:func:`~protein_performer.data.storage.shard_writer.write_shards` writes a set;
:class:`ShardSet` reads one from any location (:mod:`~protein_performer.data.storage.locations`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from protein_performer.data.storage.locations import (
    ShardError,
    is_url,
    join,
    local_path,
    open_binary,
)
from protein_performer.data.storage.manifest import check_manifest

FORMAT = "protein-performer-shards"


VERSION = 1


MANIFEST = "shards.json"


SHARD_PATTERN = "shard-{:06d}.tar"


SHARD_BYTES = 64 * 10**6


BLOCK_PROTEINS = 1024


def _hint(where: str) -> str:
    return (
        f" (run `protein-performer-data stream-prepare INPUT --out DIR` to write one, "
        f"then copy DIR to {where})"
    )


def is_shard_set(location: str | os.PathLike) -> bool:
    """True for a URL, or a local directory holding a shard manifest."""
    if is_url(location):
        return True
    p = local_path(str(location))
    return p.is_dir() and (p / MANIFEST).is_file()


def _tokens_only(name: str) -> bool:
    # training needs tokens only: the .acc member is skipped unread
    return not name.endswith(".acc")


class ShardSet:
    """A shard set's manifest, and its proteins streamed by position.

    Positions follow a *shard order* (a permutation of the shards, default the stored order):
    position p is the p-th protein when the shards are read in that order. Pickles by
    location and manifest (workers reopen shards themselves).
    """

    def __init__(self, location: str | os.PathLike) -> None:
        self.location = str(location)
        where = self.location
        try:
            with open_binary(join(where, MANIFEST)) as f:
                raw = f.read()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ShardError(f"{where}: not a shard set (no {MANIFEST})" + _hint(where)) from exc
        try:
            m = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ShardError(f"{join(where, MANIFEST)}: unreadable manifest ({exc})") from exc

        check_manifest(m, FORMAT, VERSION, where, _hint(where), ShardError)
        self.manifest: dict[str, Any] = m
        self.names = [s["name"] for s in m["shards"]]
        self.shard_proteins = np.asarray([s["proteins"] for s in m["shards"]], np.int64)
        self.residue_counts = np.asarray(m["residue_counts"], np.int64)

    def __len__(self) -> int:
        return int(self.manifest["n_proteins"])

    def __repr__(self) -> str:
        return f"ShardSet({self.location!r}, proteins={len(self)}, shards={len(self.names)})"

    def _blocks(self, shard: int) -> Iterator[tuple[int, bytes, bytes]]:
        """(first protein index, tok bytes, off bytes) of each block of one shard, in order."""
        from webdataset.tariterators import group_by_keys, tar_file_expander

        url = join(self.location, self.names[shard])
        with open_binary(url) as stream:
            members = tar_file_expander(
                [{"url": url, "stream": stream}], eof_value=None, select_files=_tokens_only
            )
            for sample in group_by_keys(members):
                try:
                    yield int(sample["__key__"]), sample["tok"], sample["off"]
                except (KeyError, ValueError) as exc:
                    raise ShardError(
                        f"{url}: damaged block {sample.get('__key__')!r} ({exc}; "
                        "write the shard set again)"
                    ) from exc

    def iter_range(
        self, start: int, stop: int | None, order: np.ndarray | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """(protein index, uint8 tokens) at positions ``[start, stop)`` of the shard order.

        Reads only the shards the range touches; a shard entered mid-way is read (not
        decoded) from its start, since a tar stream cannot seek.
        """
        order = np.arange(len(self.names)) if order is None else np.asarray(order)
        stop = len(self) if stop is None else int(stop)
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"range [{start}, {stop}) outside [0, {len(self)}]")
        counts = self.shard_proteins[order]
        firsts = np.concatenate([[0], np.cumsum(counts)])  # position of each ordered shard
        k = int(np.searchsorted(firsts, start, side="right")) - 1
        while start < stop and k < len(order):
            shard = int(order[k])
            lo, hi = start - int(firsts[k]), min(stop, int(firsts[k + 1])) - int(firsts[k])
            seen = 0
            for first, tok, off in self._blocks(shard):
                offsets = np.frombuffer(off, "<i8")
                n = len(offsets) - 1
                if seen + n > lo:
                    tokens = np.frombuffer(tok, np.uint8)
                    for j in range(max(lo - seen, 0), min(n, hi - seen)):
                        yield first + j, tokens[offsets[j] : offsets[j + 1]]
                seen += n
                if seen >= hi:
                    break
            if seen < hi:
                raise ShardError(
                    f"{join(self.location, self.names[shard])}: {seen} proteins, "
                    f"the manifest says {int(self.shard_proteins[shard])} (a "
                    "truncated copy? copy the shard set again)"
                )
            start = int(firsts[k + 1])
            k += 1
