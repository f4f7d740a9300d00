"""Length filters and exact-duplicate removal over parsed FASTA blocks, counted in a report."""

from __future__ import annotations

import numpy as np

from protein_performer.data.accessions import accession_bytes
from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.digest_set import DigestSet
from protein_performer.data.fasta_blocks import Block
from protein_performer.data.fasta_report import NUCLEOTIDE_MIN, ReadReport

# token id -> whether it is a nucleotide letter (A, C, G, T, U, N are amino-acid letters too)
NUCLEOTIDE_TOKENS = np.zeros(256, dtype=bool)
NUCLEOTIDE_TOKENS[[ALPHABET.index(c) for c in "ACGTUN"]] = True


class Filter:
    """Length filters and exact-duplicate removal over blocks, counted in a ReadReport."""

    def __init__(
        self,
        report: ReadReport,
        *,
        min_length: int = 1,
        max_length: int | None = None,
        dedupe: bool = False,
    ) -> None:
        if min_length < 1:
            raise ValueError(f"min_length must be >= 1, got {min_length}")
        if max_length is not None and max_length < min_length:
            raise ValueError(f"max_length must be >= min_length ({min_length}), got {max_length}")
        self.report = report
        self.min_length = min_length
        self.max_length = max_length
        self.seen = DigestSet() if dedupe else None
        self.accessions = DigestSet()  # 8 bytes per protein: repeated accessions are counted

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
        self._check(block)
        return block

    def _check(self, block: Block) -> None:
        """Count kept records that look wrong (nucleotides, a repeated accession)."""
        rep = self.report
        lengths = block.lengths
        if len(lengths) == 0:
            return
        # records without a single non-nucleotide residue, of a length that rules out chance
        other = np.concatenate([[0], np.cumsum(~NUCLEOTIDE_TOKENS[block.tokens])])
        ends = np.cumsum(lengths)
        n_other = other[ends] - other[ends - lengths]
        nuc = (n_other == 0) & (lengths >= NUCLEOTIDE_MIN)
        if nuc.any():
            if not rep.nucleotide_like:
                rep.nucleotide_example = block.headers[int(np.argmax(nuc))].decode(
                    "utf-8", "replace"
                )[:60]
            rep.nucleotide_like += int(nuc.sum())
        accs = [accession_bytes(h) for h in block.headers]
        new = self.accessions.add(DigestSet.digests(accs))
        if not new.all():
            if not rep.duplicate_accessions:
                rep.duplicate_example = accs[int(np.argmin(new))].decode("utf-8", "replace")
            rep.duplicate_accessions += int((~new).sum())


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
