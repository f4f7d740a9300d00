"""Length filters and exact-duplicate removal over parsed FASTA blocks, counted in a report."""

from __future__ import annotations

import numpy as np

from protein_performer.data.fasta.digests import DigestSet
from protein_performer.data.fasta.blocks import Block
from protein_performer.data.fasta.report import ReadReport
from protein_performer.data.fasta.options import ReadOptions


class Filter:
    """The options' length filters and exact-duplicate removal over blocks, counted in a
    ReadReport."""

    def __init__(self, report: ReadReport, options: ReadOptions) -> None:
        self.report = report
        self.min_length = options.min_length
        self.max_length = options.max_length
        self.seen = DigestSet() if options.dedupe else None

    def __call__(self, block: Block) -> Block:
        rep = self.report
        rep.records += block.n_records
        lengths = block.lengths
        keep = lengths >= self.min_length
        rep.too_short += int((~keep).sum())
        if self.max_length is not None:
            long_ = lengths > self.max_length
            rep.too_long += int(long_.sum())
            keep &= ~long_
        if self.seen is not None:
            if block.digests is None:
                raise ValueError("dedupe needs blocks read with want_digests=True")
            idx = np.flatnonzero(keep)
            new = self.seen.add(block.digests[idx])
            rep.duplicates += int((~new).sum())
            rep.dedupe_bytes = self.seen.nbytes
            keep[idx[~new]] = False
        if not keep.all():
            block = select_records(block, keep)
        rep.proteins += len(block.lengths)
        rep.residues += int(block.lengths.sum())
        return block


def select_records(block: Block, keep: np.ndarray) -> Block:
    lengths = block.lengths
    # Token mask by run lengths: each record's residues inherit its keep flag.
    token_keep = np.repeat(keep, lengths)
    idx = np.flatnonzero(keep)
    return Block(
        block.path,
        [block.headers[i] for i in idx],
        block.tokens[token_keep],
        lengths[keep],
        [block.lines[i] for i in idx] if block.lines is not None else None,
        block.n_records,
        block.raw_end,
        block.digests[keep] if block.digests is not None else None,
    )
