"""Labelled proteins for fine-tuning: reading, label encoding, splits, batches.

    rows = read_labelled("train.csv", level="protein")         # CSV/TSV: sequence + label
    rows = read_labelled("x.fasta", labels="y.tsv", level="residue")   # FASTA + labels file
    task = LabelEncoding.fit(rows.labels, "classification")   # class names -> indices

A per-residue label is a string with one character per residue (``"00110"``) or a comma
list (``"0,0,1,1,0"``) of the protein's length. A bad label names the file, the row (the
line number, header = 1) and the problem: ``train.csv: row 7 (P12345): 4 labels for a
sequence of 5 residues``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from protein_performer.data.alphabet import ALPHABET, InvalidResidueError
from protein_performer.data.fasta.reading import read_fasta
from protein_performer.errors import InputError
from protein_performer.masking import IGNORE

FASTA_SUFFIXES = (".fasta", ".fa", ".faa", ".fasta.gz", ".fa.gz", ".faa.gz")


class LabelFileError(InputError):
    """A labelled-data file is malformed; the message names the file, row and problem."""


@dataclass
class LabelledRows:
    """Sequences (token arrays) with raw labels: a string / float per protein, or a list of
    strings per residue (level=residue)."""

    ids: list[str] = field(default_factory=list)
    tokens: list[np.ndarray] = field(default_factory=list)  # residue tokens, no specials
    labels: list = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: Sequence[int]) -> LabelledRows:
        return LabelledRows(
            [self.ids[i] for i in index],
            [self.tokens[i] for i in index],
            [self.labels[i] for i in index],
            self.source,
        )

    def sequences(self) -> list[str]:
        return [ALPHABET.decode(t) for t in self.tokens]


def _delimiter(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    return "\t" if name.endswith((".tsv", ".tab", ".txt")) else ","


def _open_text(path: Path):
    import gzip

    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", newline="")
    return open(path, newline="")


def _table(path: Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV/TSV with the given columns checked."""
    if not path.is_file():
        raise LabelFileError(f"labelled data not found: {path}")
    with _open_text(path) as f:
        reader = csv.DictReader(f, delimiter=_delimiter(path))
        have = reader.fieldnames or []
        missing = [c for c in columns if c not in have]
        if missing:
            raise LabelFileError(
                f"{path}: no column(s) {missing} (found {have}); set data.sequence_column / "
                "data.label_column / data.id_column to the file's names"
            )
        return [(i + 2, row) for i, row in enumerate(reader)]


def parse_residue_labels(text: str) -> list[str]:
    """``"0,1,1"`` -> ["0", "1", "1"]; ``"011"`` -> ["0", "1", "1"] (spaces ignored)."""
    text = text.strip()
    if "," in text:
        return [t.strip() for t in text.split(",")]
    return list(text.replace(" ", ""))


def _encode(seq: str, where: str) -> np.ndarray:
    try:
        tokens = ALPHABET.encode(seq.strip())
    except InvalidResidueError as err:
        raise LabelFileError(f"{where}: {err}") from None
    if len(tokens) == 0:
        raise LabelFileError(f"{where}: empty sequence")
    return tokens


def _label(raw: str | None, level: str, n: int, where: str) -> object:
    if raw is None or not str(raw).strip():
        raise LabelFileError(f"{where}: empty label")
    if level == "protein":
        return str(raw).strip()
    labels = parse_residue_labels(str(raw))
    if len(labels) != n:
        raise LabelFileError(
            f"{where}: {len(labels)} labels for a sequence of {n} residues (give one label "
            "per residue, as a string or a comma list)"
        )
    if any(not t for t in labels):
        raise LabelFileError(f"{where}: an empty entry in the comma list of labels")
    return labels


def read_labelled(
    path: str | Path,
    *,
    level: str = "protein",
    labels: str | Path | None = None,
    sequence_column: str = "sequence",
    label_column: str = "label",
    id_column: str = "id",
) -> LabelledRows:
    """A CSV/TSV with sequence and label columns (an id column optional), or a FASTA file
    with a labels file (id + label columns, ids = the FASTA accessions)."""
    path = Path(path)
    out = LabelledRows(source=str(path))
    if path.name.lower().endswith(FASTA_SUFFIXES):
        if labels is None:
            raise LabelFileError(
                f"{path} is a FASTA file: give its labels too (data.labels=labels.tsv with "
                f"columns {id_column!r} and {label_column!r})"
            )
        return _read_fasta_labels(path, Path(labels), level, label_column, id_column)
    rows = _table(path, [sequence_column, label_column])
    for line, row in rows:
        rid = (row.get(id_column) or "").strip() or f"row{line}"
        where = f"{path}: row {line} ({rid})"
        tokens = _encode(row[sequence_column] or "", where)
        out.ids.append(rid)
        out.tokens.append(tokens)
        out.labels.append(_label(row[label_column], level, len(tokens), where))
    if not out.ids:
        raise LabelFileError(f"{path}: no rows")
    return out


def _read_fasta_labels(
    fasta: Path, labels: Path, level: str, label_column: str, id_column: str
) -> LabelledRows:
    table = {}
    for line, row in _table(labels, [id_column, label_column]):
        table[(row[id_column] or "").strip()] = (line, row[label_column])
    out = LabelledRows(source=str(fasta))
    for record in read_fasta(fasta):
        rid = record.accession
        if rid not in table:
            raise LabelFileError(
                f"{labels}: no label for FASTA record {rid!r} of {fasta} (the {id_column!r} "
                "column must hold the FASTA accessions)"
            )
        line, raw = table[rid]
        tokens = ALPHABET.encode(record.sequence)
        out.ids.append(rid)
        out.tokens.append(tokens)
        out.labels.append(_label(raw, level, len(tokens), f"{labels}: row {line} ({rid})"))
    if not out.ids:
        raise LabelFileError(f"{fasta}: no records")
    return out


@dataclass
class LabelEncoding:
    """Raw labels -> targets: class names (sorted, numbers numerically) or float values."""

    problem: str
    names: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, rows: LabelledRows, problem: str) -> LabelEncoding:
        if problem == "regression":
            return cls(problem)
        values = set()
        for label in rows.labels:
            values.update(label if isinstance(label, list) else [label])

        def key(v: str):
            try:
                return (0, float(v), v)
            except ValueError:
                return (1, 0.0, v)

        names = sorted(values, key=key)
        if len(names) < 2:
            raise LabelFileError(
                f"{rows.source}: one class only ({names}); classification needs two or more"
            )
        return cls(problem, names)

    def encode(self, rows: LabelledRows) -> list[np.ndarray | float | int]:
        index = {n: i for i, n in enumerate(self.names)}
        out = []
        for rid, label in zip(rows.ids, rows.labels):
            where = f"{rows.source}: {rid}"
            if self.problem == "regression":
                try:
                    out.append(float(label))
                except ValueError:
                    raise LabelFileError(
                        f"{where}: label {label!r} is not a number (problem=regression)"
                    ) from None
                continue
            items = label if isinstance(label, list) else [label]
            unknown = sorted({v for v in items if v not in index})
            if unknown:
                raise LabelFileError(
                    f"{where}: label(s) {unknown} not among the training classes {self.names}"
                )
            codes = [index[v] for v in items]
            out.append(np.asarray(codes, dtype=np.int64) if isinstance(label, list) else codes[0])
        return out


def class_weights(targets: list, num_classes: int) -> torch.Tensor:
    """Balanced weights n / (C * count_c) over every labelled item (0 counts -> weight 0)."""
    flat = np.concatenate([np.atleast_1d(t) for t in targets]).astype(np.int64)
    counts = np.bincount(flat, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


class LabelledDataset(torch.utils.data.Dataset):
    """Example i: ``<cls>`` + residues (+ ``<eos>``) cropped to ``max_length`` tokens, and its
    target: a class / value, or per-token classes with ``IGNORE`` at the specials."""

    def __init__(self, tokens: list[np.ndarray], targets: list, max_length: int) -> None:
        self.tokens, self.targets, self.max_length = tokens, targets, max_length

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        wrapped = ALPHABET.wrap(self.tokens[i], self.max_length)
        target = self.targets[i]
        if isinstance(target, np.ndarray):
            aligned = np.full(len(wrapped), IGNORE, dtype=np.int64)
            n = min(len(target), len(wrapped) - 1)
            aligned[1 : n + 1] = target[:n]
            return torch.from_numpy(wrapped), torch.from_numpy(aligned)
        return torch.from_numpy(wrapped), torch.tensor(target)


def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Pad to the longest: tokens with ``<pad>``, per-token targets with ``IGNORE``."""
    length = max(len(t) for t, _ in batch)
    tokens = torch.full((len(batch), length), ALPHABET.pad_idx, dtype=torch.long)
    per_token = batch[0][1].dim() == 1
    if per_token:
        targets = torch.full((len(batch), length), IGNORE, dtype=torch.long)
    for i, (t, y) in enumerate(batch):
        tokens[i, : len(t)] = t
        if per_token:
            targets[i, : len(y)] = y
    if not per_token:
        targets = torch.stack([y for _, y in batch])
    return {"tokens": tokens, "mask": tokens != ALPHABET.pad_idx, "targets": targets}


def splits(
    n: int, *, folds: int, valid_fraction: float, seed: int, strata: list | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, valid) index pairs: one random split (``folds=1``) or k folds (stratified by
    ``strata`` when given and every class has >= k members)."""
    rng = np.random.default_rng(seed)
    if folds <= 1:
        order = rng.permutation(n)
        n_valid = max(1, int(round(valid_fraction * n)))
        return [(np.sort(order[n_valid:]), np.sort(order[:n_valid]))]
    from sklearn.model_selection import KFold, StratifiedKFold

    if strata is not None and min(np.unique(strata, return_counts=True)[1]) >= folds:
        kf = StratifiedKFold(folds, shuffle=True, random_state=seed)
        return [(a, b) for a, b in kf.split(np.zeros(n), strata)]
    kf = KFold(folds, shuffle=True, random_state=seed)
    return [(a, b) for a, b in kf.split(np.zeros(n))]
