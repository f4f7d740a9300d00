"""The FASTA block parser: a file as blocks of valid, encoded records.

The reader works on big decompressed blocks (16 MiB) rather than line by line: a block is
split into records at ``"\\n>"`` with one C call, each record's sequence lines are cleaned
and encoded by a single ``bytes.translate`` (alphabet lookup table + deletion of line
breaks/whitespace), and validity is checked once per block with numpy. Python touches each
*record* once, never each line or residue (speed: ``docs/benchmarks.md``). The rules it
enforces are listed in :mod:`protein_performer.data.fasta.reading`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protein_performer.data.alphabet import ALPHABET, GAP_CHARACTERS, INVALID, RARE_AMINO_ACIDS
from protein_performer.data.fasta.accessions import accession_bytes
from protein_performer.data.fasta.digests import DigestSet
from protein_performer.data.fasta.input import FastaInput
from protein_performer.data.fasta.options import DEFAULT_READ, ReadOptions
from protein_performer.data.fasta.report import (
    EMPTY,
    GAP_CHAR,
    INNER_STOP,
    INVALID_CHAR,
    FastaFormatError,
    PathLike,
    ReadReport,
)

# Decompressed bytes handled per block: big enough that per-block overhead vanishes, small
# enough that a few copies of a block stay far below the memory budget.
BLOCK_SIZE = 16 << 20

# Codes that translate() gives to non-residue bytes (token indices stop at 30).
_GAP = 253
_STOP = 254
_BAD = INVALID  # 255
_FIRST_NON_RESIDUE = _GAP
_WHITESPACE = b" \t\r\n\v\f"


def _translate_table(remove_gaps: bool) -> tuple[bytes, bytes]:
    """(256-byte translate table, bytes to delete) for residue lines."""
    table = ALPHABET.lookup_table().copy()
    table[ord("*")] = _STOP
    for g in GAP_CHARACTERS:
        table[g] = _GAP
    delete = _WHITESPACE + (GAP_CHARACTERS if remove_gaps else b"")
    return table.tobytes(), delete


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

    Invalid records raise :class:`FastaFormatError` (``options.on_invalid="error"``) or are
    counted in ``report.skipped`` and left out (``"skip"``). The options' length filters and
    deduplication are the caller's business (:func:`iter_filtered_blocks`).
    """

    def __init__(
        self,
        path: PathLike,
        options: ReadOptions = DEFAULT_READ,
        *,
        report: ReadReport | None = None,
        want_lines: bool = False,
        want_digests: bool = False,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        self.path = Path(path)
        self.on_invalid = options.on_invalid
        self.remove_gaps = options.remove_gaps
        self.report = report if report is not None else ReadReport()
        self.want_lines = want_lines
        self.want_digests = want_digests
        self.block_size = block_size
        self._table, self._delete = _translate_table(options.remove_gaps)

    def __iter__(self) -> Iterator[Block]:
        self.report.files.append(str(self.path))
        with FastaInput(self.path) as src:
            yield from self._blocks(src)

    def _blocks(self, src: FastaInput) -> Iterator[Block]:
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
                        raise FastaFormatError(
                            self.path,
                            "empty file (no FASTA records): give a FASTA file with at least "
                            "one '>' header and its sequence",
                        )
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
        acc = accession_bytes(header.rstrip(b"\r")).decode("utf-8", "replace")
        if not tok:
            reason, line, problem = EMPTY, header_line, "record has an empty sequence"
        else:
            pos = int(np.flatnonzero(np.frombuffer(tok, np.uint8) >= _FIRST_NON_RESIDUE)[0])
            code = tok[pos]
            line, col, char = self._locate(part, pos, header_line)
            if code == _GAP:
                reason = GAP_CHAR
                problem = (
                    f"gap character {char!r} at column {col} (unaligned input expected; "
                    "pass ReadOptions(remove_gaps=True) / --remove-gaps for aligned files)"
                )
            elif code == _STOP:
                reason = INNER_STOP
                problem = (
                    f"stop '*' inside the sequence at column {col} (only a trailing '*' is allowed)"
                )
            else:
                reason = INVALID_CHAR
                problem = (
                    f"invalid character {char!r} at column {col} (allowed: the 20 standard "
                    f"amino acids, {RARE_AMINO_ACIDS}, a trailing '*'; upper or lower case)"
                )
        if self.on_invalid == "skip":
            self.report.skip(reason, f"{self.path}, line {line}, record {acc!r}: {problem}")
            return
        raise FastaFormatError(
            self.path,
            problem,
            line=line,
            record=acc,
            hint=(
                " -- fix the file or pass ReadOptions(on_invalid='skip') / --on-invalid skip"
                " to skip such records"
            ),
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
