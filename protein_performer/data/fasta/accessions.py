"""The accession of a FASTA header (UniProt ``sp|P69905|...`` or the first word)."""

from __future__ import annotations

_UNIPROT_DBS = (b"sp", b"tr", b"up")


def accession_bytes(header: bytes) -> bytes:
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
    return accession_bytes(raw).decode("utf-8", "replace")
