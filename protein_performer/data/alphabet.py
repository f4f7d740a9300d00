"""The protein alphabet: residues and special tokens, with vectorised encoding.

Token indices are fixed constants (golden-tested), so checkpoints stay portable:

====  =======  ===================================================
idx   token    meaning
====  =======  ===================================================
0     <pad>    padding (never attended to, never scored)
1     <mask>   masked-LM mask
2     <cls>    beginning of a protein
3     <eos>    end of a protein
4     <sep>    separator between concatenated proteins
5     <unk>    unknown residue (only when the user asks to map them)
6-25  A..Y     the 20 standard amino acids, alphabetical by one-letter code
26-30 X B Z U O  rare / ambiguous residues
====  =======  ===================================================

The Performer paper's vocabulary has 29 tokens (25 residues + begin, end, pad, mask); ours
adds a separator for concatenated streams and an unknown token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protein_performer.errors import InputError

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<mask>", "<cls>", "<eos>", "<sep>", "<unk>")
STANDARD_AMINO_ACIDS: str = "ACDEFGHIKLMNPQRSTVWY"
RARE_AMINO_ACIDS: str = "XBZUO"
GAP_CHARACTERS: bytes = b"-."
TERMINAL_STOP: bytes = b"*"

# A byte code that cannot be a token index: marks characters outside the alphabet.
INVALID: int = 255


class InvalidResidueError(InputError):
    """A sequence holds a character outside the alphabet."""

    def __init__(self, char: str, position: int, message: str | None = None) -> None:
        self.char = char
        self.position = position
        super().__init__(message or f"invalid residue {char!r} at position {position + 1}")


@dataclass(frozen=True)
class Alphabet:
    """Protein residues plus special tokens, encoded through a 256-entry byte lookup table."""

    pad_idx: int = 0
    mask_idx: int = 1
    cls_idx: int = 2
    eos_idx: int = 3
    sep_idx: int = 4
    unk_idx: int = 5

    @property
    def tokens(self) -> tuple[str, ...]:
        return SPECIAL_TOKENS + tuple(STANDARD_AMINO_ACIDS) + tuple(RARE_AMINO_ACIDS)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def first_residue_idx(self) -> int:
        return len(SPECIAL_TOKENS)

    @property
    def standard_idx(self) -> np.ndarray:
        """Indices of the 20 standard amino acids, in STANDARD_AMINO_ACIDS order."""
        start = self.first_residue_idx
        return np.arange(start, start + len(STANDARD_AMINO_ACIDS))

    @property
    def residue_idx(self) -> np.ndarray:
        """Indices of all 25 residue tokens (standard and rare)."""
        start = self.first_residue_idx
        return np.arange(start, len(self))

    @property
    def special_idx(self) -> np.ndarray:
        return np.arange(len(SPECIAL_TOKENS))

    def index(self, token: str) -> int:
        return self.tokens.index(token)

    def lookup_table(self) -> np.ndarray:
        """uint8[256]: byte -> token index, INVALID for bytes outside the alphabet.

        Lower-case letters map like upper-case ones.
        """
        table = np.full(256, INVALID, dtype=np.uint8)
        for offset, aa in enumerate(STANDARD_AMINO_ACIDS + RARE_AMINO_ACIDS):
            idx = self.first_residue_idx + offset
            table[ord(aa)] = idx
            table[ord(aa.lower())] = idx
        return table

    def encode(
        self,
        sequence: str | bytes,
        *,
        remove_gaps: bool = False,
        unknown_to_unk: bool = False,
    ) -> np.ndarray:
        """Encode one residue string to uint8 token indices (no special tokens added).

        A trailing ``*`` stop is stripped. Gap characters (``-``, ``.``) raise unless
        ``remove_gaps``. Characters outside the alphabet raise InvalidResidueError, or map
        to ``<unk>`` when ``unknown_to_unk``.
        """
        raw = sequence.encode("ascii", errors="replace") if isinstance(sequence, str) else sequence
        raw = raw.rstrip(TERMINAL_STOP)
        if remove_gaps:
            raw = raw.translate(None, GAP_CHARACTERS)
        codes = _LOOKUP[np.frombuffer(raw, dtype=np.uint8)]
        bad = np.flatnonzero(codes == INVALID)
        if bad.size:
            if unknown_to_unk:
                codes = codes.copy()
                codes[bad] = self.unk_idx
            else:
                pos = int(bad[0])
                char = chr(raw[pos])
                hint = ""
                if char.encode() in (b"-", b"."):
                    hint = " (a gap character: pass remove_gaps / --remove-gaps for aligned input)"
                raise InvalidResidueError(
                    char, pos, f"invalid residue {char!r} at position {pos + 1}{hint}"
                )
        return codes

    def wrap(self, residues: np.ndarray, max_length: int | None = None) -> np.ndarray:
        """int64 [min(n + 2, max_length)]: ``<cls>`` + residues + ``<eos>``, the example layout.

        With ``max_length``, a protein that does not fit keeps its first ``max_length`` tokens:
        ``<cls>`` + its first ``max_length - 1`` residues and no ``<eos>`` (its end is not
        there), the window a validation example holds (data.datasets.protein_example).
        """
        r = np.asarray(residues)
        ends = max_length is None or len(r) + 2 <= max_length
        n = len(r) if ends else max(int(max_length), 1) - 1
        out = np.empty(n + 1 + ends, dtype=np.int64)
        out[0] = self.cls_idx
        out[1 : n + 1] = r[:n]
        if ends:
            out[-1] = self.eos_idx
        return out

    def decode(self, tokens: np.ndarray | list[int]) -> str:
        """Token indices back to a string; special tokens are written as their names."""
        toks = self.tokens
        return "".join(toks[int(t)] for t in tokens)


ALPHABET = Alphabet()
_LOOKUP = ALPHABET.lookup_table()

# token index -> upper-case letter (FASTA records and writing).
_LETTERS = np.zeros(256, dtype=np.uint8)
for _i, _aa in enumerate(STANDARD_AMINO_ACIDS + RARE_AMINO_ACIDS):
    _LETTERS[ALPHABET.first_residue_idx + _i] = ord(_aa)
TOKEN_TO_LETTER: bytes = _LETTERS.tobytes()


def tokens_to_letters(tokens: np.ndarray | bytes) -> bytes:
    """Residue tokens back to upper-case one-letter codes (bytes)."""
    raw = tokens.tobytes() if isinstance(tokens, np.ndarray) else bytes(tokens)
    return raw.translate(TOKEN_TO_LETTER)


def count_tokens(tokens: np.ndarray) -> np.ndarray:
    """int64 [len(ALPHABET)]: occurrences of each token in a uint8 array.

    ``np.bincount`` widens every byte to int64 first; counting byte *pairs* (a uint16 view)
    halves that work and the pair table (65536 bins) is tiny -- about 2x faster here.
    """
    tokens = np.ascontiguousarray(tokens, dtype=np.uint8)
    n = len(tokens) & ~1
    pairs = np.bincount(tokens[:n].view(np.uint16), minlength=1 << 16).reshape(256, 256)
    counts = pairs.sum(axis=0) + pairs.sum(axis=1)
    if n < len(tokens):
        counts[tokens[-1]] += 1
    return counts[: len(ALPHABET)].astype(np.int64)
