"""A split of :class:`~protein_performer.data.config.DataConfig` opened: FASTA files and
prepared stores read into one source, or a shard set; then its dataset (whole proteins,
cropped, or concatenated windows)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.config import DataConfig, DataInputError
from protein_performer.data.datasets import (
    ChainedSources,
    ConcatenatedDataset,
    ProteinDataset,
    filter_lengths,
)
from protein_performer.data.fasta.reading import load_proteins
from protein_performer.data.source import ProteinSource
from protein_performer.data.storage.shards import ShardSet, is_shard_set
from protein_performer.data.storage.store import open_source

log = logging.getLogger(__name__)


def open_stream(cfg: DataConfig, split: str) -> tuple[ShardSet, list[Any]]:
    """The split's shard set (its only entry) and a one-line read report."""
    entries = getattr(cfg, split)
    if len(entries) != 1:
        raise DataInputError(
            f"data.{split}: a shard set must be the only entry of its split, "
            f"got {entries} (write the files as one shard set)"
        )
    unsupported = [
        (cfg.mode != "protein", f"data.mode={cfg.mode}", "data.mode=protein"),
        (cfg.max_tokens is not None, "data.max_tokens", "data.max_tokens=null"),
        (
            split == "train" and cfg.cluster_tsv is not None,
            "data.cluster_tsv",
            "data.cluster_tsv=null",
        ),
    ]
    for bad, what, fix in unsupported:
        if bad:
            raise DataInputError(
                f"data.{split}: {what} is not available for a streamed shard "
                f"set {entries[0]} (set {fix}, or train from a prepared store)"
            )
    shards = ShardSet(entries[0])
    reports: list[Any] = [
        f"{shards.location}: {len(shards)} proteins in {len(shards.names)} shards, streamed"
    ]
    log.info("data.%s: %s", split, reports[0])
    return shards, reports


def open_split(cfg: DataConfig, split: str) -> tuple[ProteinSource | ShardSet, list[Any]]:
    """A split's proteins (FASTA files and stores chained, or a shard set) and what reading
    reported for each input; no proteins left raises :class:`DataInputError`."""
    if any(is_shard_set(p) for p in getattr(cfg, split)):
        return open_stream(cfg, split)
    paths = [Path(p) for p in getattr(cfg, split)]
    fasta = [p for p in paths if not p.is_dir()]
    stores = [p for p in paths if p.is_dir()]  # a prepared store
    reports: list[Any] = []
    parts: list[ProteinSource] = []
    if fasta:
        src, report = load_proteins([str(p) for p in fasta], cfg.read_options)
        parts.append(src)
        reports.append(report)
    for p in stores:
        src, n_removed = filter_lengths(open_source(p), cfg.min_length, cfg.max_protein_length)
        note = f"{p}: {len(src)} proteins from the store, {n_removed} outside the length filter"
        if cfg.dedupe:
            note += " (data.dedupe is not applied to stores: deduplicate when preparing)"
        reports.append(note)
        parts.append(src)
    source = parts[0] if len(parts) == 1 else ChainedSources(parts)
    if len(source) == 0:
        raise DataInputError(_no_proteins_message(split, paths, reports, cfg))
    for r in reports:
        log.info("data.%s: %s", split, r.summary() if hasattr(r, "summary") else r)
    return source, reports


def make_dataset(
    cfg: DataConfig, split: str, source: ProteinSource | ShardSet
) -> ProteinDataset | ConcatenatedDataset | ShardSet:
    """The split's examples (a shard set stays as it is: it streams per rank and worker)."""
    train = split == "train"
    if isinstance(source, ShardSet):
        return source  # the streaming dataset is built per dataloader (rank, workers)
    if cfg.mode == "concat" or (cfg.mode == "packed" and train):
        layout = "sep" if cfg.mode == "concat" else "example"
        ds = ConcatenatedDataset(source, cfg.max_length, train=train, seed=cfg.seed, layout=layout)
        if ds.n_tail_tokens:
            log.info(
                "data.%s: %d windows of %d tokens; the last window holds the %d-token tail",
                split,
                len(ds),
                cfg.max_length,
                ds.n_tail_tokens,
            )
        return ds
    ds = ProteinDataset(source, cfg.max_length, train=train, seed=cfg.seed)
    if ds.n_cropped:
        log.info(
            "data.%s: %d of %d proteins longer than %d residues are cropped (%s)",
            split,
            ds.n_cropped,
            len(ds),
            cfg.max_length - 2,
            "random window" if train else "first residues",
        )
    return ds


def _no_proteins_message(split: str, paths: list[Path], reports: list[Any], cfg: DataConfig) -> str:
    """One line: the split, its files, what reading left out (by reason) and the fix."""
    read = "; ".join(r.summary() if hasattr(r, "summary") else str(r) for r in reports)
    fixes = ["give files that hold proteins"]
    if cfg.min_length > 1 or cfg.max_protein_length is not None:
        fixes.append(
            f"widen the length filter (data.min_length={cfg.min_length}, "
            f"data.max_protein_length={cfg.max_protein_length or 'null'})"
        )
    if cfg.on_invalid == "skip":
        fixes.append("set data.on_invalid=error to see the first invalid record")
    return (
        f"data.{split}: no proteins left after reading {[str(p) for p in paths]} ({read}): "
        + ", or ".join(fixes)
    )


def residue_counts(source: ProteinSource) -> np.ndarray:
    """float64 [31] token counts of a source.

    Uses a store's precomputed counts when it has them.
    """
    n_tokens = len(ALPHABET)
    if isinstance(source, ChainedSources):
        return sum((residue_counts(s) for s in source.sources), np.zeros(n_tokens))
    precomputed = getattr(source, "residue_counts", None)
    if callable(precomputed):
        precomputed = precomputed()
    if precomputed is not None:
        c = np.asarray(precomputed, dtype=np.float64).ravel()
        out = np.zeros(n_tokens)
        out[: min(n_tokens, len(c))] = c[:n_tokens]
        return out
    flat = getattr(source, "tokens", None)
    if isinstance(flat, np.ndarray) and len(flat) == int(np.asarray(source.lengths).sum()):
        return np.bincount(flat, minlength=n_tokens)[:n_tokens].astype(np.float64)
    out = np.zeros(n_tokens)
    for i in range(len(source)):
        out += np.bincount(source[i], minlength=n_tokens)[:n_tokens]
    return out
