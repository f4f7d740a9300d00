"""Reading FASTA (plain or gzip) into residue tokens, fast and with errors that say where.

:func:`read_fasta` yields records, :func:`load_proteins` reads files into memory and
:func:`iter_filtered_blocks` streams the kept records block by block (the prepared store,
statistics and splits use it). The parts, one job each: :mod:`~.input` (opening, gzip),
:mod:`~.blocks` (the block parser), :mod:`~.filters` (length filters, dedupe),
:mod:`~.report` (errors and counts), :mod:`~.writer` (output).

The parser (:mod:`~.blocks`) works on big decompressed blocks, one ``bytes.translate``
per record and one numpy check per block. Measured on the 500k-protein Swiss-Prot train set
(``docs/benchmarks.md``): this path is about as fast as decompression itself, faster than
``Bio.SeqIO.FastaIO.SimpleFastaParser``, which moreover yields no line numbers and then
still needs the encoding step.

Rules (issue 2): lower case is upper-cased; a trailing ``*`` stop is stripped; ``-``/``.`` gaps
are an error unless ``remove_gaps``; any other character outside :data:`ALPHABET` is an error;
whitespace and ``\\r`` inside sequence lines are ignored. Malformed input raises
:class:`FastaFormatError` naming the file, record, line and problem, or, with
``on_invalid="skip"``, the record is skipped and counted by reason in a :class:`ReadReport`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from protein_performer.data.alphabet import TOKEN_TO_LETTER
from protein_performer.data.fasta.accessions import accession_bytes
from protein_performer.data.fasta.blocks import BLOCK_SIZE, Block, BlockReader
from protein_performer.data.fasta.filters import Filter
from protein_performer.data.fasta.options import DEFAULT_READ, ReadOptions
from protein_performer.data.fasta.report import PathLike, ReadReport
from protein_performer.data.source import InMemoryProteins

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FastaRecord:
    """One FASTA record: ``sequence`` holds the cleaned upper-case residue letters."""

    accession: str
    description: str  # the whole header line after '>'
    sequence: bytes
    line: int  # 1-based line number of the header


def iter_filtered_blocks(
    paths: Sequence[PathLike] | PathLike,
    report: ReadReport,
    options: ReadOptions = DEFAULT_READ,
    *,
    want_lines: bool = False,
    block_size: int = BLOCK_SIZE,
) -> Iterator[Block]:
    """Blocks of the kept records of several files, in order; everything counted in ``report``.

    Deduplication spans all files (the first occurrence is kept).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    filt = Filter(report, options)
    for path in paths:
        reader = BlockReader(
            path,
            options,
            report=report,
            want_lines=want_lines,
            want_digests=options.dedupe,
            block_size=block_size,
        )
        for block in reader:
            yield filt(block)


def read_fasta(
    path: PathLike,
    options: ReadOptions = DEFAULT_READ,
    *,
    report: ReadReport | None = None,
) -> Iterator[FastaRecord]:
    """Iterate the records of a FASTA file (plain or gzip, detected by content).

    Invalid records raise :class:`FastaFormatError` or, with ``options.on_invalid="skip"``,
    are counted in ``report`` (a :class:`ReadReport`; a warning is logged at the end if none
    was given) and left out. Every valid record is kept (``options`` without filters).
    """
    options.require_unfiltered("read_fasta")
    own = report is None
    report = report if report is not None else ReadReport()
    reader = BlockReader(path, options, report=report, want_lines=True)
    for block in reader:
        report.records += block.n_records
        report.proteins += len(block.lengths)
        report.residues += int(block.lengths.sum())
        letters = block.tokens.tobytes().translate(TOKEN_TO_LETTER)
        start = 0
        for header, n, line in zip(block.headers, block.lengths.tolist(), block.lines or ()):
            yield FastaRecord(
                accession_bytes(header).decode("utf-8", "replace"),
                header.decode("utf-8", "replace"),
                letters[start : start + n],
                line,
            )
            start += n
    if own and report.n_skipped:
        log.warning("%s: %s", path, report.summary())


def load_proteins(
    paths: Sequence[PathLike] | PathLike, options: ReadOptions = DEFAULT_READ
) -> tuple[InMemoryProteins, ReadReport]:
    """Read FASTA files into memory as one :class:`InMemoryProteins` (tokens via ALPHABET).

    Records outside ``[options.min_length, options.max_length]`` residues and (with
    ``options.dedupe``) exact duplicate sequences are dropped and counted in the returned
    :class:`ReadReport`.
    """
    report = ReadReport()
    flats: list[np.ndarray] = []
    lens: list[np.ndarray] = []
    accs: list[str] = []
    for block in iter_filtered_blocks(paths, report, options):
        flats.append(block.tokens)
        lens.append(block.lengths)
        accs.extend(accession_bytes(h).decode("utf-8", "replace") for h in block.headers)
    lengths = np.concatenate(lens) if lens else np.zeros(0, np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.concatenate(flats) if flats else np.zeros(0, np.uint8)
    if report.n_skipped:
        log.warning("%s", report.summary())
    for warning in report.warnings():
        log.warning("%s", warning)
    return InMemoryProteins(tokens, offsets, accs), report
