"""Corpus statistics: counts, length distribution, residue frequencies (table + PNG)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from protein_performer.data.alphabet import ALPHABET, count_tokens
from protein_performer.data.fasta.options import DEFAULT_READ, ReadOptions
from protein_performer.data.fasta.reading import iter_filtered_blocks
from protein_performer.data.fasta.report import PathLike, ReadReport
from protein_performer.data.source import ProteinSource
from protein_performer.data.storage.store import ProteinStore, is_store
from protein_performer.errors import InputError

# 1-2-5 length bins: readable edges over five orders of magnitude.
LENGTH_EDGES = np.array([1, 50, 100, 200, 300, 500, 1000, 2000, 5000, 10000, 20000, 50000, 10**9])


@dataclass
class CorpusStats:
    """Statistics of a protein corpus; ``residues`` and ``length_histogram`` are DataFrames."""

    summary: dict
    residues: pd.DataFrame  # token, count, frequency (residue tokens only)
    length_histogram: pd.DataFrame  # lo, hi (inclusive), proteins
    lengths: np.ndarray  # int64 [N]

    def to_text(self) -> str:
        summ = pd.Series(self.summary, name="value", dtype=object).to_frame()
        res = self.residues.copy()
        res["frequency"] = res["frequency"].map(lambda f: f"{f:.4f}")
        return "\n\n".join(
            [
                summ.to_string(),
                "length histogram\n" + self.length_histogram.to_string(index=False),
                "residue frequencies\n" + res.to_string(index=False),
            ]
        )

    def plot(self, path: PathLike) -> Path:
        """Length histogram (log scale) and residue frequencies, as one PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        lengths = self.lengths[self.lengths > 0]
        if lengths.size:
            bins = np.logspace(0, np.log10(max(lengths.max(), 2)) + 0.01, 60)
            ax1.hist(lengths, bins=bins, color="tab:blue")
            ax1.set_xscale("log")
        ax1.set_xlabel("protein length (residues)")
        ax1.set_ylabel("proteins")
        ax1.set_title(f"{self.summary['proteins']:,} proteins")
        ax2.bar(self.residues["token"], self.residues["frequency"], color="tab:green")
        ax2.set_ylabel("frequency")
        ax2.set_title(f"{self.summary['residues']:,} residues")
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
        plt.close(fig)
        return out


def _from_counts(lengths: np.ndarray, counts: np.ndarray, report: ReadReport | None) -> CorpusStats:
    lengths = np.asarray(lengths, dtype=np.int64)
    res_idx = ALPHABET.residue_idx
    res_counts = counts[res_idx]
    total = int(res_counts.sum())
    freq = res_counts / total if total else np.zeros(len(res_idx))
    nz = freq[freq > 0]
    summary: dict = {
        "proteins": int(len(lengths)),
        "residues": int(lengths.sum()),
    }
    if len(lengths):
        q = np.percentile(lengths, [50, 90, 99])
        summary.update(
            {
                "length_min": int(lengths.min()),
                "length_median": float(q[0]),
                "length_mean": round(float(lengths.mean()), 2),
                "length_p90": float(q[1]),
                "length_p99": float(q[2]),
                "length_max": int(lengths.max()),
            }
        )
    # exp(entropy) of the residue distribution: the unigram ("empirical") perplexity.
    summary["unigram_perplexity"] = (
        round(float(np.exp(-(nz * np.log(nz)).sum())), 3) if nz.size else None
    )
    if report is not None:
        summary["records_read"] = report.records
        for reason, n in sorted(report.skipped.items()):
            summary[f"skipped: {reason}"] = n
        # kept, but worth a look (ReadReport.warnings says why)
        if report.nucleotide_like:
            summary["nucleotide-like proteins (DNA/RNA?)"] = report.nucleotide_like
        if report.duplicate_accessions:
            summary["repeated accessions"] = report.duplicate_accessions
    hist, _ = np.histogram(lengths, bins=LENGTH_EDGES)
    histogram = pd.DataFrame(
        {"lo": LENGTH_EDGES[:-1], "hi": LENGTH_EDGES[1:] - 1, "proteins": hist}
    )
    nonempty = np.flatnonzero(hist)
    histogram = histogram.iloc[: (nonempty[-1] + 1 if nonempty.size else 0)]
    tokens = [ALPHABET.tokens[i] for i in res_idx]
    residues = pd.DataFrame(
        {"token": tokens, "count": res_counts.astype(np.int64), "frequency": freq}
    )
    return CorpusStats(summary, residues, histogram.reset_index(drop=True), lengths)


def corpus_stats(
    source: ProteinSource | PathLike | Sequence[PathLike], options: ReadOptions = DEFAULT_READ
) -> CorpusStats:
    """Statistics of a ProteinSource, a prepared store directory, or FASTA file(s).

    FASTA is streamed (only the lengths are kept), read with ``options``; malformed input
    raises its
    :class:`~protein_performer.data.fasta.report.FastaFormatError`.
    """
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        source = ProteinStore(source)
    if isinstance(source, (str, os.PathLike)) or (
        isinstance(source, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in source)
    ):
        paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        if any(is_store(p) for p in paths):
            raise InputError("give one store directory, or FASTA files, not a mixture")
        report = ReadReport()
        counts = np.zeros(len(ALPHABET), np.int64)
        lens: list[np.ndarray] = []
        for block in iter_filtered_blocks(paths, report, options):
            counts += count_tokens(block.tokens)
            lens.append(block.lengths)
        lengths = np.concatenate(lens) if lens else np.zeros(0, np.int64)
        return _from_counts(lengths, counts, report)
    precomputed = getattr(source, "residue_counts", None)
    if precomputed is not None and len(precomputed) == len(ALPHABET):
        counts = np.asarray(precomputed, dtype=np.int64)
    else:
        counts = np.zeros(len(ALPHABET), np.int64)
        flat = getattr(source, "tokens", None)
        if isinstance(flat, np.ndarray) and flat.size == int(np.asarray(source.lengths).sum()):
            for lo in range(0, flat.size, 1 << 24):
                counts += count_tokens(flat[lo : lo + (1 << 24)])
        else:
            for i in range(len(source)):
                counts += count_tokens(np.asarray(source[i], dtype=np.uint8))
    return _from_counts(np.asarray(source.lengths), counts, None)
