"""Writing a token store (layout: :mod:`protein_performer.data.storage.store`).

:func:`prepare_store` writes it in one streaming pass with bounded memory: each ``.npy``
grows by appending blocks behind a header whose shape is rewritten at the end
(:class:`~protein_performer.data.storage.npy.NpyAppender`), so nothing proportional to the
corpus is held in RAM (except, with ``dedupe``, 8 bytes per distinct protein: see
:class:`~protein_performer.data.fasta.digests.DigestSet`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from protein_performer.data.alphabet import ALPHABET, count_tokens
from protein_performer.data.fasta.accessions import accession_bytes
from protein_performer.data.fasta.blocks import BLOCK_SIZE
from protein_performer.data.fasta.options import DEFAULT_READ, ReadOptions
from protein_performer.data.fasta.reading import iter_filtered_blocks
from protein_performer.data.fasta.report import PathLike, ReadReport, as_paths
from protein_performer.data.storage.manifest import claim_out_dir, write_manifest
from protein_performer.data.storage.npy import NpyAppender
from protein_performer.data.storage.store import FILES, FORMAT, MANIFEST, VERSION, StoreError
from protein_performer.errors import MissingInputError
from protein_performer.progress import Progress


@dataclass
class PrepareReport:
    """What :func:`prepare_store` wrote and what the reader left out."""

    out_dir: str
    read: ReadReport
    seconds: float = 0.0
    bytes_written: int = 0
    dedupe_bytes: int = 0  # memory held by the duplicate detector at the end
    residue_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(ALPHABET), np.int64))

    @property
    def proteins(self) -> int:
        return self.read.proteins

    @property
    def residues(self) -> int:
        return self.read.residues

    def summary(self) -> str:
        text = (
            f"prepared {self.out_dir}: {self.read.summary()}; "
            f"{self.bytes_written / 2**20:,.1f} MiB written in {self.seconds:,.1f} s"
        )
        if self.dedupe_bytes:
            text += f"; dedupe digests {self.dedupe_bytes / 2**20:,.1f} MiB"
        return text

    def __str__(self) -> str:
        return self.summary()


def prepare_store(
    inputs: Sequence[PathLike] | PathLike,
    out_dir: PathLike,
    options: ReadOptions = DEFAULT_READ,
    *,
    progress: bool = True,
    overwrite: bool = False,
    block_size: int = BLOCK_SIZE,
) -> PrepareReport:
    """Convert FASTA files (plain or gzip) into a token store at ``out_dir``, streaming.

    Memory stays bounded by a few decompressed blocks (16 MiB each), plus 8 bytes per
    distinct protein with ``dedupe``. On any error the partial files are removed. An
    existing store is replaced only with ``overwrite``; any other non-empty directory is
    refused.
    """
    t0 = time.perf_counter()
    paths = as_paths(inputs)
    if not paths:
        raise ValueError("prepare_store needs at least one input FASTA file")
    for p in paths:
        if not p.is_file():
            raise MissingInputError(f"{p}: no such FASTA file")
    out = Path(out_dir)
    created_dir = claim_out_dir(
        out,
        overwrite,
        manifest=MANIFEST,
        is_ours=set(FILES.values()).__contains__,
        kind="store",
        command="prepare",
    )
    report = PrepareReport(str(out), ReadReport())
    sizes = [p.stat().st_size for p in paths]
    bar = Progress(sum(sizes), f"prepare {out.name}", enabled=progress)
    written: list[Path] = []
    try:
        w = {
            k: NpyAppender(out / FILES[k], dt)
            for k, dt in [
                ("tokens", np.uint8),
                ("offsets", np.int64),
                ("lengths", np.int64),
                ("accession_offsets", np.int64),
            ]
        }
        written += [a.path for a in w.values()]
        acc_path = out / FILES["accessions"]
        written.append(acc_path)
        counts = np.zeros(len(ALPHABET), dtype=np.int64)
        n_tok = 0
        n_acc = 0
        w["offsets"].append(np.zeros(1, np.int64))
        w["accession_offsets"].append(np.zeros(1, np.int64))
        file_base = {str(p): sum(sizes[:i]) for i, p in reversed(list(enumerate(paths)))}
        with open(acc_path, "wb") as acc_file:
            for block in iter_filtered_blocks(paths, report.read, options, block_size=block_size):
                lengths = block.lengths
                w["tokens"].append(block.tokens)
                w["lengths"].append(lengths)
                w["offsets"].append(n_tok + np.cumsum(lengths))
                n_tok += int(lengths.sum())
                counts += count_tokens(block.tokens)
                accs = [accession_bytes(h) for h in block.headers]
                if accs:
                    acc_file.write(b"\n".join(accs) + b"\n")
                    acc_lens = np.fromiter(map(len, accs), np.int64, len(accs)) + 1
                    w["accession_offsets"].append(n_acc + np.cumsum(acc_lens))
                    n_acc += int(acc_lens.sum())
                bar.update_to(
                    file_base[block.path] + block.raw_end, f"{report.read.proteins:,} proteins"
                )
        for a in w.values():
            a.close()
        if report.read.proteins == 0:
            raise StoreError(
                f"{out}: no proteins to store from {[str(p) for p in paths]} "
                f"({report.read.summary()}): give files that hold proteins, or loosen "
                f"--min-length/--max-length (--on-invalid error shows the first bad record)"
            )
        bar.update_to(sum(sizes))
        bar.close()
        report.residue_counts = counts
        report.seconds = time.perf_counter() - t0
        report.bytes_written = sum(p.stat().st_size for p in written)
        report.dedupe_bytes = report.read.dedupe_bytes
        write_manifest(out, MANIFEST, _manifest(report, paths, sizes, options.to_dict()))
    except BaseException:
        bar.close()
        for a in locals().get("w", {}).values():
            a._f.close()
        for p in written + [out / (MANIFEST + ".tmp")]:
            p.unlink(missing_ok=True)
        if created_dir:
            try:
                out.rmdir()
            except OSError:
                pass
        raise
    return report


def _manifest(report: PrepareReport, paths: list[Path], sizes: list[int], options: dict) -> dict:
    r = report.read
    return {
        "format": FORMAT,
        "version": VERSION,
        "n_proteins": r.proteins,
        "n_residues": r.residues,
        "alphabet": list(ALPHABET.tokens),
        "residue_counts": [int(c) for c in report.residue_counts],
        "files": FILES,
        "sources": [{"path": str(p), "bytes": s} for p, s in zip(paths, sizes)],
        "options": options,
        "read": {
            "records": r.records,
            "skipped": r.skipped,
            "too_short": r.too_short,
            "too_long": r.too_long,
            "duplicates": r.duplicates,
            "examples": r.examples,
        },
        "seconds": round(report.seconds, 3),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
