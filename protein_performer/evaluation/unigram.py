"""The unigram ("empirical") baseline: residues drawn independently from corpus frequencies.

A model that ignores context and predicts every scored token from the training corpus's
token frequencies. Its perplexity on the same tokens a model is scored on is the bar the
model must clear (about 18 on Swiss-Prot, the Performer paper's "empirical baseline"); its
accuracy is that of always predicting the most frequent residue (leucine, ~10%).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.fasta.reading import load_proteins
from protein_performer.data.source import ProteinSource

# The embedded sample corpus (repository data/sample), the fallback source of frequencies.
EMBEDDED_SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"
EMBEDDED_TRAIN = EMBEDDED_SAMPLE_DIR / "train.fasta.gz"
EMBEDDED_VALID = EMBEDDED_SAMPLE_DIR / "valid.fasta.gz"


def scored_vocabulary(*, include_eos: bool) -> np.ndarray:
    """Token indices a scorer can meet as targets: the 25 residues (+ ``<eos>`` when causal)."""
    idx = ALPHABET.residue_idx
    return np.concatenate([[ALPHABET.eos_idx], idx]) if include_eos else idx


def token_counts(source: ProteinSource, *, chunk: int = 4096) -> np.ndarray:
    """int64 [V]: occurrences of each token in a corpus, ``<cls>``/``<eos>`` once per protein."""
    counts = np.zeros(len(ALPHABET), dtype=np.int64)
    flat = getattr(source, "tokens", None)
    if isinstance(flat, np.ndarray) and flat.ndim == 1 and flat.size == int(source.lengths.sum()):
        # Flat in-memory / memmap layout: one bincount over the whole array.
        counts += np.bincount(flat, minlength=len(ALPHABET))[: len(ALPHABET)]
    else:
        for lo in range(0, len(source), chunk):
            part = [source[i] for i in range(lo, min(lo + chunk, len(source)))]
            if part:
                counts += np.bincount(np.concatenate(part), minlength=len(ALPHABET))[
                    : len(ALPHABET)
                ]
    counts[ALPHABET.cls_idx] += len(source)
    counts[ALPHABET.eos_idx] += len(source)
    return counts


def unigram_log_probs(
    frequencies: np.ndarray | Iterable[float],
    *,
    include_eos: bool = False,
    smoothing: float = 1.0,
) -> np.ndarray:
    """float64 [V]: log-probabilities of the unigram model over the scored vocabulary.

    ``frequencies`` [V] are the training corpus's token counts (or normalised frequencies).
    They are renormalised over the residue tokens (plus ``<eos>`` when ``include_eos``, for
    causal scoring, where ``<eos>`` is predicted too); every other token gets ``-inf``.
    Laplace smoothing: each token of that vocabulary gets ``smoothing`` pseudo-counts, so a
    residue never seen in training (O, U in small corpora) keeps a finite NLL. For normalised
    frequencies (not integer counts) one pseudo-count is the smallest positive frequency.
    ``include_eos`` needs a positive ``<eos>`` entry (counts from :func:`token_counts`).
    """
    freq = np.asarray(frequencies, dtype=np.float64)
    if freq.shape != (len(ALPHABET),):
        raise ValueError(
            f"residue frequencies must have {len(ALPHABET)} entries (one per token), "
            f"got shape {freq.shape}"
        )
    if not np.all(np.isfinite(freq)) or (freq < 0).any():
        raise ValueError("residue frequencies must be finite and >= 0")
    vocab = scored_vocabulary(include_eos=include_eos)
    if include_eos and freq[ALPHABET.eos_idx] <= 0:
        raise ValueError(
            "causal unigram baseline needs the <eos> count (one per training protein); "
            "compute frequencies with token_counts()"
        )
    if freq[vocab].sum() <= 0:
        raise ValueError("residue frequencies are all zero")
    values = freq[vocab]
    if not np.array_equal(values, np.round(values)):
        # Normalised frequencies: express them in units of the rarest observed token.
        values = values / values[values > 0].min()
    values = values + smoothing
    out = np.full(len(ALPHABET), -np.inf)
    out[vocab] = np.log(values) - np.log(values.sum())
    return out


def corpus_perplexity(frequencies: np.ndarray | Iterable[float]) -> float:
    """The unigram model's perplexity on the corpus its frequencies were counted on:
    exp(entropy) of the normalised positive frequencies (the number training logs beside
    its valid perplexity)."""
    freq = np.asarray(list(frequencies), dtype=np.float64)
    p = freq[freq > 0] / freq[freq > 0].sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def unigram_residue_metrics(source: ProteinSource, log_probs: np.ndarray) -> dict[str, float]:
    """The empirical baseline on every residue of a corpus (no special tokens): exact, via counts.

    Returns ``perplexity``, ``accuracy`` (of always predicting the most probable residue),
    ``nll_per_token`` and ``n_tokens``.
    """
    counts = token_counts(source).astype(np.float64)
    res = ALPHABET.residue_idx
    n = counts[res].sum()
    if n == 0:
        raise ValueError("no residues to score")
    nll = -(counts[res] * log_probs[res]).sum() / n
    best = res[np.argmax(log_probs[res])]
    return {
        "perplexity": float(np.exp(nll)),
        "accuracy": float(counts[best] / n),
        "nll_per_token": float(nll),
        "n_tokens": int(n),
    }


@lru_cache(maxsize=1)
def embedded_train_counts() -> np.ndarray:
    """Token counts of the embedded training sample (``data/sample/train.fasta.gz``)."""
    if not EMBEDDED_TRAIN.is_file():
        raise FileNotFoundError(f"embedded training sample missing: {EMBEDDED_TRAIN}")
    source, _ = load_proteins([EMBEDDED_TRAIN])
    return token_counts(source)


def baseline_log_probs(
    frequencies: np.ndarray | None, *, include_eos: bool
) -> tuple[np.ndarray, str]:
    """Unigram log-probs [V] for a checkpoint's frequencies, and a note on where they came from.

    ``None`` (a checkpoint without frequencies) falls back to the embedded training sample.
    For causal scoring (``include_eos``) without an ``<eos>`` count, the ``<eos>`` rate
    (proteins per residue) of the embedded sample is used.
    """
    if frequencies is None:
        freq = embedded_train_counts().astype(np.float64)
        note = (
            f"embedded sample {EMBEDDED_TRAIN.parent.name}/{EMBEDDED_TRAIN.name} "
            "(the checkpoint stores no residue frequencies)"
        )
    else:
        freq = np.asarray(frequencies, dtype=np.float64).copy()
        note = "checkpoint (training corpus residue frequencies)"
    if include_eos and freq.shape == (len(ALPHABET),) and freq[ALPHABET.eos_idx] <= 0:
        ref = embedded_train_counts()
        rate = ref[ALPHABET.eos_idx] / ref[ALPHABET.residue_idx].sum()
        eos = rate * freq[ALPHABET.residue_idx].sum()
        is_counts = np.array_equal(freq, np.round(freq))
        freq[ALPHABET.eos_idx] = max(round(eos), 1) if is_counts else eos
        note += "; <eos> rate from the embedded sample"
    return unigram_log_probs(freq, include_eos=include_eos), note
