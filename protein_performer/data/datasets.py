"""Map-style datasets over a ProteinSource: per-protein examples and concatenated windows.

Every item is a dict ``{"tokens": LongTensor [L], "index": int}`` (``index`` is the item's
own index, so batches can say which examples they hold); :class:`~.collate.Collate` pads
them into a batch.

* :class:`ProteinDataset` -- one protein per example: ``[<cls>] + residues + [<eos>]`` when
  it fits in ``max_length`` tokens. A longer protein gives a window of ``max_length`` tokens of
  that token stream: ``<cls>`` only if the window holds the N-terminus, ``<eos>`` only if it
  holds the C-terminus, so a model never learns a false "protein starts/ends here" and sees
  the same windows the sliding-window evaluation scores. Training draws the window's start
  from ``(seed, epoch, index)``, so any worker on any rank crops an example the same way;
  evaluation keeps the start (``<cls>`` + the first ``max_length - 1`` residues).
* :class:`ConcatenatedDataset` -- the paper's long-sequence mode: every protein followed by
  ``<sep>`` (``p0 <sep> p1 <sep> ... pN-1 <sep>``) forms one stream, cut into consecutive
  windows of exactly ``max_length`` tokens. Windows are located by binary search over the
  cumulative stream offsets; the stream is never materialised. ``layout="example"`` (the
  ``packed`` data mode) writes every protein as its own example, ``<cls> p <eos>``, in a fresh
  seeded order each training epoch: windows without padding whose tokens read as
  :class:`ProteinDataset`'s examples and the evaluation's windows do.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.source import ProteinSource
from protein_performer.seeding import mix_seed

# ConcatenatedDataset: proteins followed by <sep> | each protein as its example <cls> p <eos>
LAYOUTS = ("sep", "example")


def crop_start(
    length: int, max_length: int, *, train: bool, seed: int, epoch: int, index: int
) -> int:
    """First token kept of protein ``index``'s token stream (``<cls>`` + ``length`` residues +
    ``<eos>``) in an example of ``max_length`` tokens: 0 unless it is cropped; a pure function
    of (seed, epoch, index) in training, so every worker on every rank (and the streaming
    reader) crops alike."""
    excess = int(length) + 2 - int(max_length)
    if excess <= 0 or not train:
        return 0
    return mix_seed(seed, epoch, index) % (excess + 1)


def protein_example(
    residues: np.ndarray, index: int, max_length: int, *, train: bool, seed: int, epoch: int
) -> dict:
    """``{"tokens": window of [<cls>] + residues + [<eos>], "index": index}`` (LongTensor).

    The window is the whole stream when it fits; a cropped window keeps ``<cls>`` / ``<eos>``
    only where it holds the protein's real start / end (never a false terminus)."""
    n = len(residues)
    start = crop_start(n, max_length, train=train, seed=seed, epoch=epoch, index=index)
    end = min(start + int(max_length), n + 2)  # stream position j holds residue j - 1
    out = np.empty(end - start, dtype=np.int64)  # only the window: proteins can be 35k long
    lo, hi = max(start, 1), min(end, n + 1)
    out[lo - start : hi - start] = residues[lo - 1 : hi - 1]
    if start == 0:
        out[0] = ALPHABET.cls_idx
    if end == n + 2:
        out[-1] = ALPHABET.eos_idx
    return {"tokens": torch.from_numpy(out), "index": int(index)}


# what a dataset's _derive() rebuilds from its source (never pickled)
_DERIVED = ("_protein_lengths", "_starts", "_order")


def _without_derived(self) -> dict:
    """Pickle a dataset without the arrays it derives from its source.

    DataLoader workers started by spawn/forkserver receive the dataset pickled: a store
    source pickles by path, but an array derived from it (even a view of its memory map)
    would travel as a full copy, 8 bytes per protein per worker.
    """
    return {k: v for k, v in self.__dict__.items() if k not in _DERIVED}


def _rederive(self, state: dict) -> None:
    self.__dict__.update(state)
    self._derive()


class ChainedSources:
    """Several ProteinSources read as one (the files of one split), in the order given."""

    def __init__(self, sources: list[ProteinSource]) -> None:
        if not sources:
            raise ValueError("ChainedSources needs at least one source")
        self.sources = list(sources)
        sizes = np.array([len(s) for s in self.sources], dtype=np.int64)
        self._starts = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=self._starts[1:])
        self._lengths = np.concatenate(
            [np.asarray(s.lengths, dtype=np.int64) for s in self.sources]
        )

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, i: int) -> tuple[ProteinSource, int]:
        if not 0 <= i < len(self):
            raise IndexError(f"protein index {i} out of range [0, {len(self)})")
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self.sources[k], i - int(self._starts[k])

    def __getitem__(self, i: int) -> np.ndarray:
        src, j = self._locate(int(i))
        return src[j]

    def accession(self, i: int) -> str:
        src, j = self._locate(int(i))
        return src.accession(j)


class SubsetSource:
    """The proteins ``indices`` of a source (e.g. after a length filter on a store)."""

    def __init__(self, source: ProteinSource, indices: np.ndarray) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self._lengths = np.asarray(source.lengths, dtype=np.int64)[self.indices]

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.source[int(self.indices[i])]

    def accession(self, i: int) -> str:
        return self.source.accession(int(self.indices[i]))


def filter_lengths(
    source: ProteinSource, min_length: int = 1, max_length: int | None = None
) -> tuple[ProteinSource, int]:
    """Keep proteins with ``min_length <= length <= max_length``; returns (source, n_removed)."""
    lengths = np.asarray(source.lengths)
    keep = lengths >= min_length
    if max_length is not None:
        keep &= lengths <= max_length
    n_removed = int(len(lengths) - keep.sum())
    if n_removed == 0:
        return source, 0
    return SubsetSource(source, np.flatnonzero(keep)), n_removed


class ProteinDataset(Dataset):
    """One example per protein: ``[<cls>] + residues + [<eos>]``, at most ``max_length`` tokens.

    Proteins longer than ``max_length - 2`` residues are cropped to a window of the token
    stream (see the module docstring): a random window in training (start drawn from
    ``mix_seed(seed, epoch, index)``; call :meth:`set_epoch` each epoch), the first
    ``max_length`` tokens in evaluation.
    """

    def __init__(
        self, source: ProteinSource, max_length: int, *, train: bool, seed: int = 0
    ) -> None:
        if max_length <= 2:
            raise ValueError(f"max_length must be > 2 (room for <cls>, <eos>), got {max_length}")
        self.source = source
        self.max_length = int(max_length)
        self.train = bool(train)
        self.seed = int(seed)
        self.epoch = 0
        self._derive()

    def _derive(self) -> None:
        # a store's lengths are a memory map: a view, not a copy
        self._protein_lengths = np.asarray(self.source.lengths, dtype=np.int64)

    __getstate__ = _without_derived
    __setstate__ = _rederive

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.source)

    @property
    def lengths(self) -> np.ndarray:
        """int64 [N]: tokens of each example after cropping (incl. <cls>, <eos>)."""
        return np.minimum(self._protein_lengths + 2, self.max_length)

    @property
    def n_cropped(self) -> int:
        """How many proteins are longer than an example can hold."""
        return int((self._protein_lengths > self.max_length - 2).sum())

    def crop_start(self, i: int) -> int:
        """First token kept of protein i's ``<cls> + residues + <eos>`` (0 unless cropped)."""
        return crop_start(
            self._protein_lengths[i],
            self.max_length,
            train=self.train,
            seed=self.seed,
            epoch=self.epoch,
            index=i,
        )

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        return protein_example(
            self.source[i], i, self.max_length, train=self.train, seed=self.seed, epoch=self.epoch
        )


class ConcatenatedDataset(Dataset):
    """Proteins joined into one stream, cut into fixed windows of ``max_length`` tokens.

    ``layout="sep"``: every protein followed by ``<sep>``, in the source's order (the paper's
    long-sequence mode). ``layout="example"``: every protein written as its own example,
    ``<cls> residues <eos>``, in an order drawn from ``(seed, epoch)`` in training (call
    :meth:`set_epoch`; the source's order in evaluation), so that an epoch's windows hold other
    neighbours than the last one's. Window ``w`` is stream tokens
    ``[w * max_length, (w + 1) * max_length)``. The last partial window (the stream's tail,
    ``n_tail_tokens`` tokens) is kept as a shorter window when ``keep_tail`` (the default: no
    token is lost; collate pads that one window), or dropped and counted in
    ``dropped_tokens`` when not.
    """

    def __init__(
        self,
        source: ProteinSource,
        max_length: int,
        *,
        train: bool = False,
        seed: int = 0,
        keep_tail: bool = True,
        layout: str = "sep",
    ) -> None:
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.source = source
        self.max_length = int(max_length)
        self.train = bool(train)
        self.seed = int(seed)
        self.epoch = 0
        self.keep_tail = bool(keep_tail)
        self.layout = layout
        self._derive()
        self.stream_length = int(self._starts[-1])
        self.n_full_windows = self.stream_length // self.max_length
        self.n_tail_tokens = self.stream_length - self.n_full_windows * self.max_length
        has_tail = self.keep_tail and self.n_tail_tokens > 0
        self.n_windows = self.n_full_windows + int(has_tail)
        self.dropped_tokens = 0 if self.keep_tail else self.n_tail_tokens

    @property
    def _shuffled(self) -> bool:
        return self.layout == "example" and self.train

    def _derive(self) -> None:
        self._protein_lengths = np.asarray(self.source.lengths, dtype=np.int64)
        n = len(self._protein_lengths)
        # _order[k]: the protein at stream place k (identity unless shuffled per epoch)
        self._order = (
            np.random.default_rng(mix_seed(self.seed, self.epoch)).permutation(n)
            if self._shuffled
            else np.arange(n, dtype=np.int64)
        )
        # _starts[k]: stream position of place k's block; _starts[-1]: the stream length
        extra = 2 if self.layout == "example" else 1
        self._starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(self._protein_lengths[self._order] + extra, out=self._starts[1:])

    __getstate__ = _without_derived
    __setstate__ = _rederive

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self.epoch = int(epoch)
            if self._shuffled:
                self._derive()  # the same stream length: only the order moves

    def __len__(self) -> int:
        return self.n_windows

    @property
    def lengths(self) -> np.ndarray:
        """int64 [W]: tokens per window (max_length, the kept tail shorter)."""
        out = np.full(self.n_windows, self.max_length, dtype=np.int64)
        if self.n_windows > self.n_full_windows:
            out[-1] = self.n_tail_tokens
        return out

    def window(self, w: int) -> np.ndarray:
        """uint8 tokens of window w."""
        if not 0 <= w < self.n_windows:
            raise IndexError(f"window {w} out of range [0, {self.n_windows})")
        start = w * self.max_length
        end = min(start + self.max_length, self.stream_length)
        out = np.empty(end - start, dtype=np.uint8)
        # a block is [<cls>] residues <sep | eos>: residues sit at block offsets [pre, pre + n)
        pre, last = (1, ALPHABET.eos_idx) if self.layout == "example" else (0, ALPHABET.sep_idx)
        k = int(np.searchsorted(self._starts, start, side="right")) - 1
        pos = start
        while pos < end:
            p0, p1 = int(self._starts[k]), int(self._starts[k + 1])
            lo, hi = pos - p0, min(p1, end) - p0  # the block offsets this window holds
            dst = out[pos - start : pos - start + hi - lo]
            residues = self.source[int(self._order[k])]
            r_lo, r_hi = max(lo, pre), min(hi, pre + len(residues))
            if r_lo < r_hi:
                dst[r_lo - lo : r_hi - lo] = residues[r_lo - pre : r_hi - pre]
            if pre and lo == 0:
                dst[0] = ALPHABET.cls_idx
            if hi == p1 - p0:
                dst[-1] = last
            pos += hi - lo
            k += 1
        return out

    def __getitem__(self, w: int) -> dict:
        w = int(w)
        return {"tokens": torch.from_numpy(self.window(w).astype(np.int64)), "index": w}
