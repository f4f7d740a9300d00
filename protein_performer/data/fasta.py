"""Reading FASTA (plain or gzip) into residue tokens, fast and with errors that say where.

The reader works on big decompressed blocks (16 MiB) rather than line by line: a block is
split into records at ``"\\n>"`` with one C call, each record's sequence lines are cleaned
and encoded by a single ``bytes.translate`` (alphabet lookup table + deletion of line
breaks/whitespace), and validity is checked once per block with numpy. Python touches each
*record* once, never each line or residue. Measured on the 500k-protein Swiss-Prot train set
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

import gzip
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, Literal, Sequence

import numpy as np

from protein_performer.data.alphabet import (
    ALPHABET,
    GAP_CHARACTERS,
    INVALID,
    RARE_AMINO_ACIDS,
    STANDARD_AMINO_ACIDS,
)
from protein_performer.data.source import InMemoryProteins

log = logging.getLogger(__name__)

OnInvalid = Literal["error", "skip"]
PathLike = str | os.PathLike

# Decompressed bytes handled per block: big enough that per-block overhead vanishes, small
# enough that a few copies of a block stay far below the memory budget.
BLOCK_SIZE = 16 << 20

# Codes that translate() gives to non-residue bytes (token indices stop at 30).
_GAP = 253
_STOP = 254
_BAD = INVALID  # 255
_FIRST_NON_RESIDUE = _GAP
_WHITESPACE = b" \t\r\n\v\f"

# Skip reasons (keys of ReadReport.skipped).
EMPTY = "empty sequence"
INVALID_CHAR = "invalid character"
GAP_CHAR = "gap character"
INNER_STOP = "stop '*' inside sequence"


class FastaFormatError(ValueError):
    """Malformed FASTA input; the message names the file, record, line and the problem."""

    def __init__(
        self,
        path: PathLike,
        problem: str,
        *,
        line: int | None = None,
        record: str | None = None,
        hint: str = "",
    ) -> None:
        self.path = str(path)
        self.problem = problem
        self.line = line
        self.record = record
        where = self.path
        if line is not None:
            where += f", line {line}"
        if record is not None:
            where += f", record {record!r}"
        super().__init__(f"{where}: {problem}{hint}")


@dataclass(frozen=True)
class FastaRecord:
    """One FASTA record: ``sequence`` holds the cleaned upper-case residue letters."""

    accession: str
    description: str  # the whole header line after '>'
    sequence: bytes
    line: int  # 1-based line number of the header


@dataclass
class ReadReport:
    """What reading kept and what it left out; skipped records are counted by reason."""

    files: list[str] = field(default_factory=list)
    records: int = 0  # records found in the input (valid or not)
    proteins: int = 0  # records kept
    residues: int = 0  # residues of the kept records
    skipped: dict[str, int] = field(default_factory=dict)  # invalid records, by reason
    too_short: int = 0
    too_long: int = 0
    duplicates: int = 0
    examples: list[str] = field(default_factory=list)  # first few skip messages
    dedupe_bytes: int = 0  # memory held by the duplicate detector
    max_examples: int = 5

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def skip(self, reason: str, message: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.examples) < self.max_examples:
            self.examples.append(message)

    def summary(self) -> str:
        parts = [f"{self.proteins:,} proteins", f"{self.residues:,} residues"]
        parts.append(f"from {self.records:,} records in {len(self.files)} file(s)")
        dropped = []
        for reason, n in sorted(self.skipped.items()):
            dropped.append(f"{n:,} {reason}")
        if self.too_short:
            dropped.append(f"{self.too_short:,} shorter than min_length")
        if self.too_long:
            dropped.append(f"{self.too_long:,} longer than max_length")
        if self.duplicates:
            dropped.append(f"{self.duplicates:,} exact duplicates")
        text = ", ".join(parts)
        text += "; skipped: " + (", ".join(dropped) if dropped else "none")
        return text

    def __str__(self) -> str:
        return self.summary()


# -- headers ------------------------------------------------------------------------------

_UNIPROT_DBS = (b"sp", b"tr", b"up")


def _accession_bytes(header: bytes) -> bytes:
    """Accession from a header line (without '>'); see :func:`parse_accession`."""
    words = header.split(None, 1)
    first = words[0] if words else b""
    if b"|" in first:
        parts = first.split(b"|")
        if parts[0] in _UNIPROT_DBS and len(parts) >= 2 and parts[1]:
            return parts[1]
    return first


def parse_accession(header: str | bytes) -> str:
    """The accession of a FASTA header.

    ``sp|P69905|HBA_HUMAN Hemoglobin ...`` and ``tr|Q6GZX4|...`` give the UniProt accession
    (``P69905``); any other header gives its first word (``ACC GO=...`` -> ``ACC``,
    ``UniRef50_Q6GZX4 ...`` -> ``UniRef50_Q6GZX4``). A leading ``>`` is ignored.
    """
    raw = header.encode("utf-8", "replace") if isinstance(header, str) else header
    if raw.startswith(b">"):
        raw = raw[1:]
    return _accession_bytes(raw).decode("utf-8", "replace")


# -- opening ------------------------------------------------------------------------------

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: PathLike) -> bool:
    """True when the file starts with the gzip magic bytes (detected by content, not name)."""
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


class _Input:
    """A FASTA file opened for decompressed block reads; ``position`` counts raw bytes."""

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such FASTA file")
        if self.path.is_dir():
            raise FastaFormatError(
                self.path, "is a directory, not a FASTA file",
                hint=" (a prepared store? open it with store.ProteinStore / open_source)",
            )
        self.size = self.path.stat().st_size
        self._raw = open(self.path, "rb")
        # Detect gzip by content, not by suffix: '.fa' files are sometimes gzipped and
        # '.gz' files sometimes are not.
        self.gzipped = self._raw.read(2) == GZIP_MAGIC
        self._raw.seek(0)
        self._stream: IO[bytes] = gzip.GzipFile(fileobj=self._raw) if self.gzipped else self._raw

    @property
    def position(self) -> int:
        return self._raw.tell()

    def read(self, n: int, line: int) -> bytes:
        if not self.gzipped:
            return self._stream.read(n)
        try:
            return self._stream.read(n)
        except (EOFError, zlib.error, OSError) as exc:  # BadGzipFile is an OSError
            problem = (
                "truncated gzip stream (the file ended before the end-of-stream marker; "
                "an interrupted download or copy?)"
                if isinstance(exc, EOFError)
                else f"corrupt gzip stream ({exc})"
            )
            raise FastaFormatError(self.path, problem, line=line) from exc

    def close(self) -> None:
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def __enter__(self) -> "_Input":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the block parser ---------------------------------------------------------------------


def _translate_table(remove_gaps: bool) -> tuple[bytes, bytes]:
    """(256-byte translate table, bytes to delete) for residue lines."""
    table = ALPHABET.lookup_table().copy()
    table[ord("*")] = _STOP
    for g in GAP_CHARACTERS:
        table[g] = _GAP
    delete = _WHITESPACE + (GAP_CHARACTERS if remove_gaps else b"")
    return table.tobytes(), delete


# token index -> upper-case letter (for FastaRecord.sequence and FASTA writing).
_LETTERS = np.zeros(256, dtype=np.uint8)
for _i, _aa in enumerate(STANDARD_AMINO_ACIDS + RARE_AMINO_ACIDS):
    _LETTERS[ALPHABET.first_residue_idx + _i] = ord(_aa)
TOKEN_TO_LETTER: bytes = _LETTERS.tobytes()


def tokens_to_letters(tokens: np.ndarray | bytes) -> bytes:
    """Residue tokens back to upper-case one-letter codes (bytes)."""
    raw = tokens.tobytes() if isinstance(tokens, np.ndarray) else bytes(tokens)
    return raw.translate(TOKEN_TO_LETTER)


@dataclass
class Block:
    """The valid records of one decompressed block, in file order.

    ``tokens`` holds their residues encoded and concatenated; ``lengths[k]`` is record k's
    length; ``headers[k]`` its header line (without '>'); ``lines`` the header line numbers
    (only when the reader was asked for them).
    """

    path: str
    headers: list[bytes]
    tokens: np.ndarray  # uint8 [sum(lengths)]
    lengths: np.ndarray  # int64 [n]
    lines: list[int] | None
    n_records: int  # records in the block, valid or not
    raw_end: int  # compressed/raw bytes of the file consumed so far (for progress)
    digests: np.ndarray | None = None  # uint64 [n] sequence digests (reader's want_digests)


class BlockReader:
    """Iterate a FASTA file as :class:`Block` s of valid, encoded records.

    Invalid records raise :class:`FastaFormatError` (``on_invalid="error"``) or are counted in
    ``report.skipped`` and left out (``"skip"``). Length filters and deduplication are the
    caller's business (:func:`iter_filtered_blocks`).
    """

    def __init__(
        self,
        path: PathLike,
        *,
        on_invalid: OnInvalid = "error",
        remove_gaps: bool = False,
        report: ReadReport | None = None,
        want_lines: bool = False,
        want_digests: bool = False,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        if on_invalid not in ("error", "skip"):
            raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
        self.path = Path(path)
        self.on_invalid = on_invalid
        self.remove_gaps = remove_gaps
        self.report = report if report is not None else ReadReport()
        self.want_lines = want_lines
        self.want_digests = want_digests
        self.block_size = block_size
        self._table, self._delete = _translate_table(remove_gaps)

    def __iter__(self) -> Iterator[Block]:
        self.report.files.append(str(self.path))
        with _Input(self.path) as src:
            yield from self._blocks(src)

    def _blocks(self, src: _Input) -> Iterator[Block]:
        line = 1  # line number of the first byte of `carry`
        carry = b""
        started = False
        eof = False
        while not eof:
            chunk = src.read(self.block_size, line)
            eof = not chunk
            data = carry + chunk if carry else chunk
            if not started:
                stripped = data.lstrip(_WHITESPACE)
                if not stripped:
                    if eof:
                        raise FastaFormatError(self.path, "empty file (no FASTA records)")
                    carry = b""  # only whitespace so far: keep counting lines
                    line += data.count(b"\n")
                    continue
                line += data.count(b"\n", 0, len(data) - len(stripped))
                if not stripped.startswith(b">"):
                    first = stripped.split(b"\n", 1)[0][:40].decode("utf-8", "replace")
                    raise FastaFormatError(
                        self.path,
                        f"sequence data before the first header ({first.strip()!r}); "
                        "a FASTA record starts with a '>' header line",
                        line=line,
                        hint=" (is this a FASTA file?)",
                    )
                data = stripped
                started = True
            if eof:
                body, carry = data[1:], b""
            else:
                cut = data.rfind(b"\n>")
                if cut < 0:
                    # One record longer than a block: keep reading until it ends.
                    carry = data
                    continue
                # `body`: whole records without the leading '>' of the first one.
                body, carry = data[1:cut], data[cut + 1 :]
            yield self._parse(body, line, src.position)
            line += body.count(b"\n") + 1

    def _parse(self, body: bytes, first_line: int, raw_end: int) -> Block:
        """Encode whole records: ``body`` is their text without the first record's '>'."""
        table, delete = self._table, self._delete
        parts = body.split(b"\n>")
        headers: list[bytes] = []
        toks: list[bytes] = []
        stop = b"\xfe"
        for part in parts:
            header, _, seq = part.partition(b"\n")
            tok = seq.translate(table, delete)
            if tok.endswith(stop):
                tok = tok.rstrip(stop)
            headers.append(header)
            toks.append(tok)
        # Hashing here, on the per-record bytes, is cheaper than slicing them out later.
        digests = DigestSet.digests(toks) if self.want_digests else None
        lengths = np.fromiter(map(len, toks), dtype=np.int64, count=len(toks))
        flat = np.frombuffer(b"".join(toks), dtype=np.uint8)
        lines = self._header_lines(parts, first_line) if self.want_lines else None

        # Validate once per block: empty records and non-residue codes.
        bad_mask = lengths == 0
        if flat.size and flat.max() >= _FIRST_NON_RESIDUE:
            offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            bad_pos = np.flatnonzero(flat >= _FIRST_NON_RESIDUE)
            bad_mask[np.unique(np.searchsorted(offsets, bad_pos, side="right") - 1)] = True
        if bad_mask.any():
            all_lines = lines if lines is not None else self._header_lines(parts, first_line)
            for k in np.flatnonzero(bad_mask):
                self._invalid(parts[k], headers[k], toks[k], all_lines[k])
            keep = ~bad_mask
            headers = [h for h, ok in zip(headers, keep) if ok]
            if lines is not None:
                lines = [x for x, ok in zip(lines, keep) if ok]
            flat = np.frombuffer(b"".join(t for t, ok in zip(toks, keep) if ok), dtype=np.uint8)
            lengths = lengths[keep]
            digests = digests[keep] if digests is not None else None
        # Windows line endings leave '\r' at the end of headers.
        headers = [h.rstrip(b"\r") for h in headers] if b"\r" in body else headers
        return Block(str(self.path), headers, flat, lengths, lines, len(parts), raw_end, digests)

    @staticmethod
    def _header_lines(parts: list[bytes], first_line: int) -> list[int]:
        out = []
        line = first_line
        for part in parts:
            out.append(line)
            line += part.count(b"\n") + 1
        return out

    def _invalid(self, part: bytes, header: bytes, tok: bytes, header_line: int) -> None:
        """Raise or count one invalid record, naming the line and column of the problem."""
        acc = _accession_bytes(header.rstrip(b"\r")).decode("utf-8", "replace")
        if not tok:
            reason, line, problem = EMPTY, header_line, "record has an empty sequence"
        else:
            pos = int(np.flatnonzero(np.frombuffer(tok, np.uint8) >= _FIRST_NON_RESIDUE)[0])
            code = tok[pos]
            line, col, char = self._locate(part, pos, header_line)
            if code == _GAP:
                reason = GAP_CHAR
                problem = (f"gap character {char!r} at column {col} (unaligned input expected; "
                           "pass remove_gaps / --remove-gaps for aligned files)")
            elif code == _STOP:
                reason = INNER_STOP
                problem = f"stop '*' inside the sequence at column {col} (only a trailing '*' is allowed)"
            else:
                reason = INVALID_CHAR
                problem = (f"invalid character {char!r} at column {col} (allowed: the 20 standard "
                           f"amino acids, {RARE_AMINO_ACIDS}, a trailing '*'; upper or lower case)")
        if self.on_invalid == "skip":
            self.report.skip(reason, f"{self.path}, line {line}, record {acc!r}: {problem}")
            return
        raise FastaFormatError(
            self.path, problem, line=line, record=acc,
            hint=" -- fix the file or pass on_invalid='skip' / --on-invalid skip to skip such records",
        )

    def _locate(self, part: bytes, pos: int, header_line: int) -> tuple[int, int, str]:
        """(line, column, character) of the ``pos``-th kept byte of a record's sequence."""
        seq_lines = part.split(b"\n")[1:]
        seen = 0
        for i, raw in enumerate(seq_lines):
            kept = raw.translate(None, self._delete)
            if seen + len(kept) > pos:
                # Column in the raw line: skip deleted bytes up to the pos-th kept one.
                want = pos - seen
                n = 0
                for col, b in enumerate(raw):
                    if bytes([b]) in self._delete:
                        continue
                    if n == want:
                        return header_line + 1 + i, col + 1, chr(b)
                    n += 1
            seen += len(kept)
        return header_line, 0, "?"


# -- length filters and dedupe ------------------------------------------------------------


class DigestSet:
    """Exact-duplicate detector over 64-bit digests of the token sequences.

    Digests live in sorted ``uint64`` arrays (a small log-structured merge: new digests form
    a sorted run, runs of similar size are merged), so memory is 8 bytes per distinct
    protein (~2 GB for TrEMBL's ~250M) plus a transient copy of at most one capped run
    during merges -- instead of the ~80 bytes per entry of a Python ``set``. With 64-bit
    digests the chance of any false "duplicate" among n proteins is about n^2 / 2^65
    (1e-3 at TrEMBL scale).
    """

    MAX_RUN = 1 << 25  # runs beyond 32M digests (256 MiB) are not merged further

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(r) for r in self.runs)

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in self.runs)

    @staticmethod
    def digests(toks: Sequence[bytes]) -> np.ndarray:
        """uint64 [n] digests: Python's own 64-bit bytes hash (SipHash, keyed per process).

        Measured ~6x cheaper than ``hashlib.blake2b(digest_size=8)`` per record (no object
        per call); digests never leave the process, so the per-process key is harmless.
        """
        return np.fromiter(map(hash, toks), dtype=np.int64, count=len(toks)).view(np.uint64)

    def add(self, digests: np.ndarray) -> np.ndarray:
        """Insert digests; returns bool [n]: True where the digest was not seen before
        (the first of equal digests within ``digests`` counts as new)."""
        new = np.zeros(len(digests), dtype=bool)
        if len(digests) == 0:
            return new
        _, first = np.unique(digests, return_index=True)
        new[first] = True
        for run in self.runs:
            idx = np.searchsorted(run, digests)
            idx[idx == len(run)] = 0
            new &= run[idx] != digests
        if new.any():
            self.runs.append(np.sort(digests[new]))
            self._merge()
        return new

    def _merge(self) -> None:
        runs = self.runs
        while len(runs) >= 2 and len(runs[-2]) <= 2 * len(runs[-1]) and (
            len(runs[-2]) + len(runs[-1]) <= self.MAX_RUN
        ):
            b, a = runs.pop(), runs.pop()
            # A stable sort of two sorted runs is a linear merge (timsort).
            runs.append(np.sort(np.concatenate([a, b]), kind="stable"))


class Filter:
    """Length filters and exact-duplicate removal over blocks, counted in a ReadReport."""

    def __init__(self, report: ReadReport, *, min_length: int = 1,
                 max_length: int | None = None, dedupe: bool = False) -> None:
        if min_length < 1:
            raise ValueError(f"min_length must be >= 1, got {min_length}")
        if max_length is not None and max_length < min_length:
            raise ValueError(f"max_length must be >= min_length ({min_length}), got {max_length}")
        self.report = report
        self.min_length = min_length
        self.max_length = max_length
        self.seen = DigestSet() if dedupe else None

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
            block = _select(block, keep)
        rep.proteins += len(block.lengths)
        rep.residues += int(block.lengths.sum())
        return block


def _select(block: Block, keep: np.ndarray) -> Block:
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


def iter_filtered_blocks(
    paths: Sequence[PathLike] | PathLike,
    report: ReadReport,
    *,
    min_length: int = 1,
    max_length: int | None = None,
    dedupe: bool = False,
    on_invalid: OnInvalid = "error",
    remove_gaps: bool = False,
    want_lines: bool = False,
    block_size: int = BLOCK_SIZE,
) -> Iterator[Block]:
    """Blocks of the kept records of several files, in order; everything counted in ``report``.

    Deduplication spans all files (the first occurrence is kept).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    filt = Filter(report, min_length=min_length, max_length=max_length, dedupe=dedupe)
    for path in paths:
        reader = BlockReader(path, on_invalid=on_invalid, remove_gaps=remove_gaps,
                             report=report, want_lines=want_lines, want_digests=dedupe,
                             block_size=block_size)
        for block in reader:
            yield filt(block)


# -- public readers -----------------------------------------------------------------------


def read_fasta(
    path: PathLike,
    *,
    on_invalid: OnInvalid = "error",
    remove_gaps: bool = False,
    report: ReadReport | None = None,
) -> Iterator[FastaRecord]:
    """Iterate the records of a FASTA file (plain or gzip, detected by content).

    Invalid records raise :class:`FastaFormatError` or, with ``on_invalid="skip"``, are
    counted in ``report`` (a :class:`ReadReport`; a warning is logged at the end if none
    was given) and left out.
    """
    own = report is None
    report = report if report is not None else ReadReport()
    reader = BlockReader(path, on_invalid=on_invalid, remove_gaps=remove_gaps,
                         report=report, want_lines=True)
    for block in reader:
        report.records += block.n_records
        report.proteins += len(block.lengths)
        report.residues += int(block.lengths.sum())
        letters = block.tokens.tobytes().translate(TOKEN_TO_LETTER)
        start = 0
        for header, n, line in zip(block.headers, block.lengths.tolist(), block.lines or ()):
            yield FastaRecord(
                _accession_bytes(header).decode("utf-8", "replace"),
                header.decode("utf-8", "replace"),
                letters[start : start + n],
                line,
            )
            start += n
    if own and report.n_skipped:
        log.warning("%s: %s", path, report.summary())


def load_proteins(
    paths: Sequence[PathLike] | PathLike,
    *,
    min_length: int = 1,
    max_length: int | None = None,
    dedupe: bool = False,
    on_invalid: OnInvalid = "error",
    remove_gaps: bool = False,
) -> tuple[InMemoryProteins, ReadReport]:
    """Read FASTA files into memory as one :class:`InMemoryProteins` (tokens via ALPHABET).

    Records outside ``[min_length, max_length]`` residues and (with ``dedupe``) exact
    duplicate sequences are dropped and counted in the returned :class:`ReadReport`.
    """
    report = ReadReport()
    flats: list[np.ndarray] = []
    lens: list[np.ndarray] = []
    accs: list[str] = []
    for block in iter_filtered_blocks(
        paths, report, min_length=min_length, max_length=max_length, dedupe=dedupe,
        on_invalid=on_invalid, remove_gaps=remove_gaps,
    ):
        flats.append(block.tokens)
        lens.append(block.lengths)
        accs.extend(_accession_bytes(h).decode("utf-8", "replace") for h in block.headers)
    lengths = np.concatenate(lens) if lens else np.zeros(0, np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.concatenate(flats) if flats else np.zeros(0, np.uint8)
    if report.n_skipped:
        log.warning("%s", report.summary())
    return InMemoryProteins(tokens, offsets, accs), report


# -- output -------------------------------------------------------------------------------


def write_fasta(
    handle: IO[bytes], header: str | bytes, sequence: bytes | np.ndarray, width: int = 60
) -> None:
    """Write one record; ``sequence`` is letters (bytes) or residue tokens (uint8 array)."""
    letters = tokens_to_letters(sequence) if isinstance(sequence, np.ndarray) else sequence
    head = header.encode() if isinstance(header, str) else header
    lines = [b">" + head]
    lines.extend(letters[i : i + width] for i in range(0, len(letters), width))
    handle.write(b"\n".join(lines) + b"\n")


def open_output(path: PathLike, compresslevel: int = 3) -> IO[bytes]:
    """Open a FASTA file for writing: gzip when the name ends in ``.gz``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix == ".gz":
        return gzip.open(p, "wb", compresslevel=compresslevel)
    return open(p, "wb")


