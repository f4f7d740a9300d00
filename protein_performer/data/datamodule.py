"""ProteinDataModule: FASTA files or prepared stores -> sharded, resumable dataloaders.

Sharding: the train/valid/test dataloaders use our batch samplers
(:mod:`~.samplers`), sharded by ``trainer.global_rank`` / ``trainer.world_size``. The
Trainer must be built with ``use_distributed_sampler=False`` or Lightning would try to
replace them with a DistributedSampler. Training pads ranks to equal steps by repeating
the epoch's first batches (counted, ``n_padded_batches``); evaluation does not pad (no
example scored twice; ranks may differ by one batch).

Resume: ``state_dict()`` (stored by Lightning in every checkpoint) holds the train
sampler's epoch and the batches consumed in it -- read from Lightning's batch progress
when a trainer is attached, otherwise counted as batches delivered by the train
dataloader -- so a resumed run continues with the next unseen batch of the same epoch.

Workers: batches are handed to workers by the DataLoader (each batch to one worker), so the
split over workers is exact; each worker's global RNGs are seeded from (seed, epoch, rank,
worker id). Crops do not use them (they hash (seed, epoch, index)).

Streaming: a split given as a shard set (a directory with ``shards.json`` or a URL, see
:mod:`~.shards`) is read by :class:`~.streaming.StreamingProteinDataset` instead: the same
examples, sharded over ranks and workers by contiguous ranges of the epoch's shard order,
resumable the same way.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, get_worker_info

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.sampling.collate import Collate
from protein_performer.data.config import DataConfig, DataInputError
from protein_performer.data.datasets import (
    ChainedSources,
    ConcatenatedDataset,
    ProteinDataset,
    filter_lengths,
)
from protein_performer.seeding import mix_seed
from protein_performer.data.sampling.clusters import ClusterReport, read_cluster_tsv
from protein_performer.data.sampling.cluster_sampler import ClusterSampler
from protein_performer.data.sampling.samplers import (
    EpochBatchSampler,
    EpochPosition,
    ShardedBatchSampler,
)
from protein_performer.data.sampling.token_budget import TokenBudgetBatchSampler
from protein_performer.data.storage.shards import ShardSet, is_shard_set
from protein_performer.data.source import ProteinSource
from protein_performer.data.storage.streaming import (
    StreamingLoader,
    StreamingProteinDataset,
    count_delivered,
)
from protein_performer.data.fasta.reading import load_proteins
from protein_performer.data.storage.store import open_source

log = logging.getLogger(__name__)


class WorkerInit:
    """Seed a DataLoader worker's global RNGs from (seed, epoch, rank, worker id)."""

    def __init__(self, seed: int, rank: int = 0) -> None:
        self.seed = int(seed)
        self.rank = int(rank)

    def __call__(self, worker_id: int) -> None:
        info = get_worker_info()
        epoch = getattr(info.dataset, "epoch", 0) if info is not None else 0
        s = mix_seed(self.seed, epoch, self.rank, worker_id)
        torch.manual_seed(s & ((1 << 63) - 1))
        np.random.seed(s & 0xFFFFFFFF)
        random.seed(s)


class _BatchCounter:
    """Batches of the current epoch delivered to the consumer of the train dataloader."""

    def __init__(self) -> None:
        self.delivered = 0


class TrainDataLoader(DataLoader):
    """A DataLoader that counts batches it delivers (not those prefetched by workers)."""

    batch_counter: _BatchCounter | None = None

    def __iter__(self):
        sampler = self.batch_sampler
        counter = self.batch_counter
        start = sampler._start if isinstance(sampler, EpochPosition) else 0
        it = super().__iter__()
        if counter is None:
            return it
        return count_delivered(it, counter, "delivered", start)


def _is_store(path: Path) -> bool:
    return path.is_dir()


class ProteinDataModule(pl.LightningDataModule):
    """Train / valid / test / test_ood data from a :class:`DataConfig`.

    ``rank``/``world_size`` override the trainer's (for tests and non-Lightning use);
    otherwise they come from the attached trainer, or 0/1 without one. ``sources`` gives
    already opened splits (``{"train": InMemoryProteins(...)}``); their paths are not read.
    """

    def __init__(
        self,
        cfg: DataConfig,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        sources: Mapping[str, ProteinSource] | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self._given_sources = dict(sources or {})
        self._rank_override = rank
        self._world_override = world_size
        self.sources: dict[str, ProteinSource] = {}
        self.datasets: dict[str, ProteinDataset | ConcatenatedDataset] = {}
        self.read_reports: dict[str, list[Any]] = {}
        self.cluster_ids: np.ndarray | None = None
        self.cluster_report: ClusterReport | None = None
        # the train position: a batch sampler, or the streaming dataset
        self._train_sampler: EpochPosition | None = None
        self._pending_state: dict | None = None
        self._counter: _BatchCounter | None = _BatchCounter()
        self.collate = Collate(ALPHABET.pad_idx)

    # -- reading --------------------------------------------------------------------------
    def _open_stream(self, split: str) -> ShardSet:
        cfg = self.cfg
        entries = getattr(cfg, split)
        if len(entries) != 1:
            raise DataInputError(
                f"data.{split}: a shard set must be the only entry of its split, "
                f"got {entries} (write the files as one shard set)"
            )
        unsupported = [
            (cfg.mode != "protein", f"data.mode={cfg.mode}", "data.mode=protein"),
            (cfg.max_tokens is not None, "data.max_tokens", "data.max_tokens=null"),
            (
                split == "train" and cfg.cluster_tsv is not None,
                "data.cluster_tsv",
                "data.cluster_tsv=null",
            ),
        ]
        for bad, what, fix in unsupported:
            if bad:
                raise DataInputError(
                    f"data.{split}: {what} is not available for a streamed shard "
                    f"set {entries[0]} (set {fix}, or train from a prepared store)"
                )
        shards = ShardSet(entries[0])
        self.read_reports[split] = [
            f"{shards.location}: {len(shards)} proteins in {len(shards.names)} shards, streamed"
        ]
        log.info("data.%s: %s", split, self.read_reports[split][0])
        return shards

    def _open_split(self, split: str) -> ProteinSource | ShardSet:
        cfg = self.cfg
        if any(is_shard_set(p) for p in getattr(cfg, split)):
            return self._open_stream(split)
        paths = [Path(p) for p in getattr(cfg, split)]
        fasta = [p for p in paths if not _is_store(p)]
        stores = [p for p in paths if _is_store(p)]
        reports: list[Any] = []
        parts: list[ProteinSource] = []
        if fasta:
            src, report = load_proteins([str(p) for p in fasta], cfg.read_options)
            parts.append(src)
            reports.append(report)
        for p in stores:
            src, n_removed = filter_lengths(open_source(p), cfg.min_length, cfg.max_protein_length)
            note = f"{p}: {len(src)} proteins from the store, {n_removed} outside the length filter"
            if cfg.dedupe:
                note += " (data.dedupe is not applied to stores: deduplicate when preparing)"
            reports.append(note)
            parts.append(src)
        source = parts[0] if len(parts) == 1 else ChainedSources(parts)
        if len(source) == 0:
            raise DataInputError(_no_proteins_message(split, paths, reports, cfg))
        self.read_reports[split] = reports
        for r in reports:
            log.info("data.%s: %s", split, r.summary() if hasattr(r, "summary") else r)
        return source

    def _make_dataset(self, split: str, source: ProteinSource | ShardSet):
        train = split == "train"
        if isinstance(source, ShardSet):
            return source  # the streaming dataset is built per dataloader (rank, workers)
        if self.cfg.mode == "concat":
            ds = ConcatenatedDataset(source, self.cfg.max_length, train=train, seed=self.cfg.seed)
            if ds.n_tail_tokens:
                log.info(
                    "data.%s: %d windows of %d tokens; the last window holds the %d-token tail",
                    split,
                    len(ds),
                    self.cfg.max_length,
                    ds.n_tail_tokens,
                )
            return ds
        ds = ProteinDataset(source, self.cfg.max_length, train=train, seed=self.cfg.seed)
        if ds.n_cropped:
            log.info(
                "data.%s: %d of %d proteins longer than %d residues are cropped (%s)",
                split,
                ds.n_cropped,
                len(ds),
                self.cfg.max_length - 2,
                "random window" if train else "first residues",
            )
        return ds

    def setup(self, stage: str | None = None) -> None:
        wanted = {
            "fit": ["train", "valid"],
            "validate": ["valid"],
            "test": ["test", "test_ood"],
            "predict": [],
            None: ["train", "valid", "test", "test_ood"],
        }.get(stage, ["train", "valid", "test", "test_ood"])
        self.cfg.check_paths([s for s in wanted if s not in self._given_sources])
        for split in wanted:
            if split in self.datasets or not self._has_split(split):
                continue
            if split in self._given_sources:
                source = self._given_sources[split]
            else:
                source = self._open_split(split)
            self.sources[split] = source
            self.datasets[split] = self._make_dataset(split, source)
        if "train" in self.datasets and self.cfg.cluster_tsv and self.cluster_ids is None:
            src = self.sources["train"]
            accessions = [src.accession(i) for i in range(len(src))]
            self.cluster_ids, self.cluster_report = read_cluster_tsv(
                self.cfg.cluster_tsv, accessions
            )
            log.info("data.cluster_tsv: %s", self.cluster_report.summary())

    def _has_split(self, split: str) -> bool:
        return bool(getattr(self.cfg, split)) or split in self._given_sources

    def _dataset(self, split: str):
        if split not in self.datasets:
            if not self._has_split(split):
                raise ValueError(f"data.{split} is empty: no {split} dataloader")
            self.setup({"train": "fit", "valid": "validate"}.get(split, "test"))
        return self.datasets[split]

    # -- sharding -------------------------------------------------------------------------
    def rank_world(self) -> tuple[int, int]:
        """(rank, world_size) the dataloaders shard by."""
        if self._rank_override is not None or self._world_override is not None:
            return int(self._rank_override or 0), int(self._world_override or 1)
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return int(trainer.global_rank), int(trainer.world_size)
        return 0, 1

    def _stream(self, split: str) -> StreamingProteinDataset:
        """This rank's streaming dataset over the split's shard set."""
        cfg = self.cfg
        rank, world = self.rank_world()
        train = split == "train"
        ds = StreamingProteinDataset(
            self._dataset(split),
            cfg.max_length,
            cfg.batch_size,
            train=train,
            seed=cfg.seed,
            rank=rank,
            world_size=world,
            num_workers=cfg.num_workers,
            shuffle_buffer=cfg.shuffle_buffer,
            collate=self.collate,
        )
        if ds.n_padded:
            log.info(
                "data.%s: %d proteins repeated at the end of the epoch so %d ranks run equal steps",
                split,
                ds.n_padded,
                world,
            )
        return ds

    def _stream_loader(self, ds: StreamingProteinDataset) -> StreamingLoader:
        rank, _ = self.rank_world()
        return StreamingLoader(
            ds,
            num_workers=self.cfg.num_workers,
            pin_memory=self.cfg.pin_memory,
            worker_init_fn=WorkerInit(self.cfg.seed, rank) if self.cfg.num_workers else None,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        ds = self._dataset(split)
        if isinstance(ds, ShardSet):
            return self._stream_loader(self._stream(split))
        return self._loader(ds, self._eval_sampler(ds))

    def _loader(self, dataset, sampler: EpochBatchSampler, cls: type = DataLoader) -> DataLoader:
        rank, _ = self.rank_world()
        return cls(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.collate,
            num_workers=self.cfg.num_workers,
            pin_memory=self.cfg.pin_memory,
            worker_init_fn=WorkerInit(self.cfg.seed, rank) if self.cfg.num_workers else None,
        )

    def train_sampler(self) -> EpochBatchSampler:
        """A fresh train batch sampler for this rank (shuffled, ranks padded to equal steps)."""
        ds = self._dataset("train")
        cfg = self.cfg
        rank, world = self.rank_world()
        common = dict(seed=cfg.seed, rank=rank, world_size=world, pad_ranks=True)
        if self.cluster_ids is not None:
            sampler: EpochBatchSampler = ClusterSampler(self.cluster_ids, cfg.batch_size, **common)
        elif cfg.max_tokens is not None:
            sampler = TokenBudgetBatchSampler(ds.lengths, cfg.max_tokens, shuffle=True, **common)
        else:
            sampler = ShardedBatchSampler(len(ds), cfg.batch_size, shuffle=True, **common)
        return sampler

    def _eval_sampler(self, ds) -> EpochBatchSampler:
        cfg = self.cfg
        rank, world = self.rank_world()
        common = dict(seed=cfg.seed, rank=rank, world_size=world, pad_ranks=False)
        if cfg.max_tokens is not None:
            return TokenBudgetBatchSampler(ds.lengths, cfg.max_tokens, shuffle=False, **common)
        return ShardedBatchSampler(len(ds), cfg.batch_size, shuffle=False, **common)

    # -- dataloaders ----------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        ds = self._dataset("train")
        trainer = getattr(self, "trainer", None)
        if isinstance(ds, ShardSet):
            return self._train_stream_loader(trainer)
        sampler = self.train_sampler()
        if trainer is not None:
            # Lightning creates (and prefetches from) the first iterator before set_epoch
            sampler.set_epoch(int(trainer.current_epoch))
        sampler.link_epoch(ds)
        if self._pending_state is not None:
            sampler.load_state_dict(self._pending_state)
            self._pending_state = None
        self._train_sampler = sampler
        self._counter = _BatchCounter()
        self._counter.delivered = sampler._start
        if sampler.n_padded_batches():
            log.info(
                "data.train: %d batches repeated at the end of the epoch so %d ranks run equal steps",
                sampler.n_padded_batches(),
                sampler.world_size,
            )
        loader = self._loader(ds, sampler, TrainDataLoader)
        loader.batch_counter = self._counter
        return loader

    def _train_stream_loader(self, trainer: Any) -> StreamingLoader:
        stream = self._stream("train")
        if trainer is not None:
            stream.set_epoch(int(trainer.current_epoch))
        if self._pending_state is not None:
            stream.load_state_dict(self._pending_state)
            self._pending_state = None
        self._train_sampler = stream
        self._counter = None  # the loader counts delivered batches itself
        return self._stream_loader(stream)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("valid")

    @property
    def test_names(self) -> list[str]:
        """Names of the test dataloaders, in the order test_dataloader returns them."""
        return [s for s in ("test", "test_ood") if self._has_split(s)]

    def test_dataloader(self) -> list[DataLoader]:
        if not self.test_names:
            raise DataInputError(
                "data.test and data.test_ood are both empty: nothing to test on (name a test "
                "file, or set test=false)"
            )
        return [self._eval_loader(split) for split in self.test_names]

    # -- statistics -----------------------------------------------------------------------
    @property
    def train_dataset(self):
        return self._dataset("train")

    @property
    def n_train_examples(self) -> int:
        """Examples in one pass over the training set (proteins, or windows in concat mode)."""
        return len(self._dataset("train"))

    def residue_frequencies(self) -> np.ndarray:
        """float64 [31]: token frequencies over the training corpus's residues (specials 0)."""
        self._dataset("train")
        counts = _residue_counts(self.sources["train"])
        total = counts.sum()
        if total == 0:
            raise DataInputError(f"data.train holds no residues: {self.cfg.train}")
        return counts / total

    # -- resume ---------------------------------------------------------------------------
    def _consumed_batches(self) -> int | None:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            try:
                if trainer.state.fn == "fit":
                    return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
            except AttributeError:
                pass
        # None: a streaming train position counts delivered batches itself
        return None if self._counter is None else int(self._counter.delivered)

    def state_dict(self) -> dict[str, Any]:
        if self._train_sampler is None:
            return {"train_sampler": dict(self._pending_state)} if self._pending_state else {}
        return {"train_sampler": self._train_sampler.state_dict(consumed=self._consumed_batches())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = state_dict.get("train_sampler")
        if state is None:
            return
        if self._train_sampler is not None:
            self._train_sampler.load_state_dict(state)
            if self._counter is not None:
                self._counter.delivered = int(state["batches_consumed"])
        else:
            self._pending_state = dict(state)


def _no_proteins_message(split: str, paths: list[Path], reports: list[Any], cfg: DataConfig) -> str:
    """One line: the split, its files, what reading left out (by reason) and the fix."""
    read = "; ".join(r.summary() if hasattr(r, "summary") else str(r) for r in reports)
    fixes = ["give files that hold proteins"]
    if cfg.min_length > 1 or cfg.max_protein_length is not None:
        fixes.append(
            f"widen the length filter (data.min_length={cfg.min_length}, "
            f"data.max_protein_length={cfg.max_protein_length or 'null'})"
        )
    if cfg.on_invalid == "skip":
        fixes.append("set data.on_invalid=error to see the first invalid record")
    return (
        f"data.{split}: no proteins left after reading {[str(p) for p in paths]} ({read}): "
        + ", or ".join(fixes)
    )


def _residue_counts(source: ProteinSource) -> np.ndarray:
    """float64 [31] token counts of a source (uses a store's precomputed counts when it has them)."""
    n_tokens = len(ALPHABET)
    if isinstance(source, ChainedSources):
        return sum((_residue_counts(s) for s in source.sources), np.zeros(n_tokens))
    precomputed = getattr(source, "residue_counts", None)
    if callable(precomputed):
        precomputed = precomputed()
    if precomputed is not None:
        c = np.asarray(precomputed, dtype=np.float64).ravel()
        out = np.zeros(n_tokens)
        out[: min(n_tokens, len(c))] = c[:n_tokens]
        return out
    flat = getattr(source, "tokens", None)
    if isinstance(flat, np.ndarray) and len(flat) == int(np.asarray(source.lengths).sum()):
        return np.bincount(flat, minlength=n_tokens)[:n_tokens].astype(np.float64)
    out = np.zeros(n_tokens)
    for i in range(len(source)):
        out += np.bincount(source[i], minlength=n_tokens)[:n_tokens]
    return out
