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

Opening a split and building its dataset: :mod:`~.splits`; worker seeding and the counting
train loader: :mod:`~.loaders`.

Streaming: a split given as a shard set (a directory with ``shards.json`` or a URL, see
:mod:`~.storage.shards`) is read by :class:`~.streaming.StreamingProteinDataset` instead: the same
examples, sharded over ranks and workers by contiguous ranges of the epoch's shard order,
resumable the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.config import DataConfig, DataInputError
from protein_performer.data.datasets import (
    ConcatenatedDataset,
    ProteinDataset,
)
from protein_performer.data.loaders import BatchCounter, TrainDataLoader, WorkerInit
from protein_performer.data.sampling.cluster_sampler import ClusterSampler
from protein_performer.data.sampling.clusters import ClusterReport, read_cluster_tsv
from protein_performer.data.sampling.collate import Collate
from protein_performer.data.sampling.samplers import (
    EpochBatchSampler,
    EpochPosition,
    ShardedBatchSampler,
)
from protein_performer.data.sampling.token_budget import TokenBudgetBatchSampler
from protein_performer.data.source import ProteinSource
from protein_performer.data.splits import make_dataset, open_split, residue_counts
from protein_performer.data.storage.shards import ShardSet
from protein_performer.data.storage.streaming import (
    StreamingLoader,
    StreamingProteinDataset,
)

log = logging.getLogger(__name__)


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
        self._counter: BatchCounter | None = BatchCounter()
        self.collate = Collate(ALPHABET.pad_idx)

    # -- reading --------------------------------------------------------------------------
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
                source, self.read_reports[split] = open_split(self.cfg, split)
            self.sources[split] = source
            self.datasets[split] = make_dataset(self.cfg, split, source)
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
        self._counter = BatchCounter()
        self._counter.delivered = sampler._start
        if sampler.n_padded_batches():
            log.info(
                "data.train: %d batches repeated at the end of the epoch "
                "so %d ranks run equal steps",
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
        counts = residue_counts(self.sources["train"])
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
