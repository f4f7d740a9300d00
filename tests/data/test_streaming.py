"""Streamed shard sets: round trip, exact sharding over nodes x ranks x workers, crops equal to
ProteinDataset's, exact resume through real DataLoader workers and Lightning, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from common import SAMPLE_TRAIN, SAMPLE_VALID

from protein_performer.data.config import DataConfig
from protein_performer.data.datamodule import ProteinDataModule
from protein_performer.data.datasets import ProteinDataset
from protein_performer.data.fasta.options import ReadOptions
from protein_performer.data.storage.locations import is_url, join
from protein_performer.data.storage.prepare import prepare_store
from protein_performer.data.storage.shard_writer import write_shards
from protein_performer.data.storage.shards import ShardError, ShardSet
from protein_performer.data.storage.store import ProteinStore
from protein_performer.data.storage.streaming import (
    StreamingLoader,
    StreamingProteinDataset,
    resume_plan,
    shuffle_buffer,
)

pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[ProteinStore, Path]:
    """The sample's 500 validation proteins as a store and as 6 small shards (blocks of 32)."""
    root = tmp_path_factory.mktemp("stream")
    prepare_store(SAMPLE_VALID, root / "store", progress=False)
    write_shards(
        root / "store", root / "shards", shard_bytes=30_000, block_proteins=32, progress=False
    )
    return ProteinStore(root / "store"), root / "shards"


def stream(shards: Path, **kw) -> StreamingProteinDataset:
    base = dict(max_length=40, batch_size=9, train=True, seed=5, shuffle_buffer=50)
    base.update(kw)
    return StreamingProteinDataset(ShardSet(str(shards)), **base)


def indices(batches) -> list[list[int]]:
    return [b["index"].tolist() for b in batches]


# -- the format -----------------------------------------------------------------------------
def test_round_trip_from_store_and_fasta(corpus, tmp_path: Path) -> None:
    store, shards = corpus
    s = ShardSet(str(shards))
    assert len(s.names) > 2 and len(s) == len(store) == 500
    got = list(s.iter_range(0, None))
    assert [i for i, _ in got] == list(range(500))
    assert all(np.array_equal(t, store[i]) for i, t in got)
    np.testing.assert_array_equal(s.residue_counts, store.residue_counts)
    # from FASTA directly (streamed, residue counts computed on the way): the same set
    write_shards(
        SAMPLE_VALID, tmp_path / "f", shard_bytes=30_000, block_proteins=32, progress=False
    )
    f = ShardSet("file://" + str(tmp_path / "f"))
    assert [s.tolist() for _, s in f.iter_range(0, None)] == [t.tolist() for _, t in got]
    np.testing.assert_array_equal(f.residue_counts, store.residue_counts)
    # a range in another shard order, starting and ending mid-shard
    order = np.arange(len(s.names))[::-1]
    whole = [i for i, _ in s.iter_range(0, None, order)]
    assert [i for i, _ in s.iter_range(77, 401, order)] == whole[77:401]
    assert sorted(whole) == list(range(500))


def test_locations_and_errors(corpus, tmp_path: Path) -> None:
    _, shards = corpus
    assert is_url("s3://bucket/x") and is_url("pipe:cat x") and not is_url("file:///tmp/x")
    assert not is_url("/tmp/x") and not is_url("C:/x")
    assert join("s3://b/p/", "shards.json") == "s3://b/p/shards.json"
    with pytest.raises(ShardError, match=r"not a shard set \(no shards.json\).*stream-prepare"):
        ShardSet(str(tmp_path))
    with pytest.raises(FileExistsError, match="a shard set already exists"):
        write_shards(SAMPLE_VALID, shards, progress=False)
    (tmp_path / "bad").mkdir()
    manifest = json.loads((shards / "shards.json").read_text())
    manifest["version"] = 99
    (tmp_path / "bad" / "shards.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="version 99"):
        ShardSet(str(tmp_path / "bad"))
    # a truncated copy: the manifest promises more proteins than the shard holds
    manifest["version"] = 1
    manifest["shards"] = manifest["shards"][:1]
    manifest["shards"][0]["proteins"] += 5
    manifest["n_proteins"] = manifest["shards"][0]["proteins"]
    (tmp_path / "bad" / "shards.json").write_text(json.dumps(manifest))
    (tmp_path / "bad" / manifest["shards"][0]["name"]).write_bytes(
        (shards / manifest["shards"][0]["name"]).read_bytes()
    )
    with pytest.raises(ShardError, match="truncated copy"):
        list(ShardSet(str(tmp_path / "bad")).iter_range(0, None))


def test_cli_stream_prepare(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "protein_performer.cli.data",
        "-q",
        "stream-prepare",
        str(SAMPLE_VALID),
        "--out",
        str(tmp_path / "s"),
        "--shard-mb",
        "0.05",
        "--block-proteins",
        "50",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "500 proteins" in done.stdout and len(ShardSet(str(tmp_path / "s")).names) > 1
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "--overwrite" in again.stderr


# -- sharding -------------------------------------------------------------------------------
@pytest.mark.parametrize("world,workers,batch", [(4, 3, 9), (3, 2, 7), (1, 1, 500), (7, 2, 4)])
def test_every_protein_once_across_nodes_ranks_workers(corpus, world, workers, batch) -> None:
    """(4, 3): 2 nodes x 2 ranks x 3 workers. Worker shares iterated by hand, no processes."""
    _, shards = corpus
    per_rank = []
    for rank in range(world):
        ds = stream(shards, batch_size=batch, rank=rank, world_size=world, num_workers=workers)
        bs = [b for k in range(workers) for b in ds.iter_worker(k, workers)]
        assert len(bs) == len(ds) and all(len(b["index"]) <= batch for b in bs)
        per_rank.append(indices(bs))
    assert len({len(r) for r in per_rank}) == 1, "equal steps on every rank"
    seen = Counter(i for r in per_rank for b in r for i in b)
    assert set(seen) == set(range(500))
    # padding: exactly W * ceil(N / W) - N proteins seen twice, counted
    assert sum(seen.values()) - 500 == ds.n_padded == world * -(-500 // world) - 500
    # evaluation: every protein exactly once, no padding
    val = Counter()
    for rank in range(world):
        ds = stream(
            shards, batch_size=batch, rank=rank, world_size=world, num_workers=workers, train=False
        )
        val.update(
            i
            for k in range(workers)
            for b in ds.iter_worker(k, workers)
            for i in b["index"].tolist()
        )
    assert val == Counter(range(500))


def test_examples_are_protein_dataset_examples(corpus) -> None:
    store, shards = corpus
    for epoch in (0, 3):
        reference = ProteinDataset(store, 40, train=True, seed=5)
        reference.set_epoch(epoch)
        ds = stream(shards, num_workers=2)
        ds.set_epoch(epoch)
        for batch in (b for k in range(2) for b in ds.iter_worker(k, 2)):
            for row, i in enumerate(batch["index"].tolist()):
                want = reference[i]["tokens"]
                n = len(want)
                assert torch.equal(batch["tokens"][row, :n], want)
                assert batch["mask"][row].sum() == n


def test_epochs_reshuffle_deterministically(corpus) -> None:
    _, shards = corpus

    def order(epoch: int, seed: int = 5) -> list[int]:
        ds = stream(shards, seed=seed)
        ds.set_epoch(epoch)
        return [i for b in ds.iter_worker(0, 1) for i in b["index"].tolist()]

    assert order(1) == order(1) and sorted(order(1)) == list(range(500))
    assert order(1) != order(2) and order(1) != order(1, seed=6)
    # the buffer shuffles within the stream: not the stored order
    assert order(0) != sorted(order(0))


def test_shuffle_buffer_is_a_permutation() -> None:
    rng = np.random.default_rng(0)
    out = list(shuffle_buffer(iter(range(100)), 10, rng))
    assert sorted(out) == list(range(100)) and out != list(range(100))


# -- resume ---------------------------------------------------------------------------------
def test_resume_plan_against_round_robin() -> None:
    def naive(batches, consumed):
        done, k, order = [0] * len(batches), 0, []
        while len(order) < consumed:
            if done[k] < batches[k]:
                done[k] += 1
                order.append(k)
            k = (k + 1) % len(batches)
        nxt = next(
            (
                j % len(batches)
                for j in range(k, k + len(batches))
                if done[j % len(batches)] < batches[j % len(batches)]
            ),
            0,
        )
        return done, nxt

    for batches in ([5, 5, 4], [3, 1, 0, 2], [4]):
        for c in range(sum(batches) + 1):
            done, nxt = resume_plan(np.array(batches), c)
            assert (done.tolist(), nxt) == naive(batches, c), (batches, c)


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_resume_mid_epoch_through_dataloader_workers(corpus, workers) -> None:
    _, shards = corpus
    full_ds = stream(shards, num_workers=workers, rank=1, world_size=2)
    full = indices(StreamingLoader(full_ds, num_workers=workers))
    assert len(full) == len(full_ds) and full_ds.state_dict()["epoch"] == 1  # a finished epoch
    for consumed in (1, 2, 5, len(full) - 1):
        ds = stream(shards, num_workers=workers, rank=1, world_size=2)
        loader = StreamingLoader(ds, num_workers=workers)
        it = iter(loader)
        for _ in range(consumed):
            next(it)
        state = ds.state_dict()
        assert state["batches_consumed"] == consumed and state["num_workers"] == workers
        resumed = stream(shards, num_workers=workers, rank=1, world_size=2)
        resumed.load_state_dict(state)
        resumed.set_epoch(0)  # Lightning sets the same epoch again after a resume
        assert indices(StreamingLoader(resumed, num_workers=workers)) == full[consumed:]
        # and the next epoch runs whole
        resumed.set_epoch(1)
        assert len(indices(StreamingLoader(resumed, num_workers=workers))) == len(full)


def test_resume_needs_same_workers(corpus) -> None:
    _, shards = corpus
    ds = stream(shards, num_workers=2)
    state = {**ds.state_dict(), "batches_consumed": 3}
    with pytest.raises(ValueError, match=r"data.num_workers=3: the checkpoint was written with 2"):
        stream(shards, num_workers=3).load_state_dict(state)
    with pytest.raises(ValueError, match="planned for num_workers=2, iterated by 1"):
        next(iter(torch.utils.data.DataLoader(ds, batch_size=None)))


# -- the DataModule and Lightning -----------------------------------------------------------
def test_datamodule_streams_like_the_store(corpus) -> None:
    store, shards = corpus
    cfg = dict(valid=[str(shards)], max_length=40, batch_size=50, seed=5)
    dm = ProteinDataModule(
        DataConfig(train=[str(shards)], num_workers=2, **cfg), rank=0, world_size=1
    )
    dm.setup("fit")
    assert dm.n_train_examples == 500
    ref = ProteinDataModule(DataConfig(train=[str(SAMPLE_VALID)], **cfg))
    ref.setup("fit")
    np.testing.assert_allclose(dm.residue_frequencies(), ref.residue_frequencies(), atol=1e-12)
    train = indices(dm.train_dataloader())
    assert sorted(i for b in train for i in b) == list(range(500)) and len(train) == 10
    val = indices(dm.val_dataloader())
    # evaluation: no shuffle; worker k streams the k-th half in stored order
    assert [i for b in val[::2] for i in b] == list(range(250))
    assert sorted(i for b in val for i in b) == list(range(500))
    with pytest.raises(
        ValueError, match=r"data.train: data.max_tokens is not available .*set data.max_tokens=null"
    ):
        ProteinDataModule(DataConfig(train=[str(shards)], max_tokens=80, **cfg)).setup("fit")
    with pytest.raises(ValueError, match="must be the only entry of its split"):
        ProteinDataModule(DataConfig(train=[str(shards), str(SAMPLE_TRAIN)], **cfg)).setup("fit")
    with pytest.raises(ValueError, match="data.shuffle_buffer must be >= 1, got 0"):
        DataConfig(train=[str(shards)], shuffle_buffer=0, **cfg)


@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before")
@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
@pytest.mark.filterwarnings("ignore:.*IterableDataset.*")
def test_lightning_resume_mid_epoch_is_exact(corpus, tmp_path: Path) -> None:
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    _, shards = corpus

    class Recorder(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[tuple[int, list[int]]] = []

        def training_step(self, batch, batch_idx):
            self.seen.append((self.current_epoch, batch["index"].tolist()))
            return (self.w * batch["tokens"].float().mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    def datamodule() -> ProteinDataModule:
        return ProteinDataModule(
            DataConfig(
                train=[str(shards)],
                valid=[str(shards)],
                max_length=40,
                batch_size=16,
                num_workers=2,
                seed=5,
            )
        )

    def trainer(**kw) -> pl.Trainer:
        return pl.Trainer(
            max_epochs=2,
            accelerator="cpu",
            devices=1,
            logger=False,
            use_distributed_sampler=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            **kw,
        )

    full = Recorder()
    ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=7, save_top_k=-1, save_last=False)
    trainer(callbacks=[ckpt]).fit(full, datamodule=datamodule())
    steps = 32  # 500 proteins over 2 workers of 250: 16 batches each
    assert len(full.seen) == 2 * steps and [e for e, _ in full.seen] == [0] * steps + [1] * steps
    epochs = [[i for e, b in full.seen if e == k for i in b] for k in (0, 1)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(500)) and epochs[0] != epochs[1]
    for step in (7, 21, 35):  # mid epoch 0 (twice) and mid epoch 1
        resumed = Recorder()
        trainer(enable_checkpointing=False).fit(
            resumed, datamodule=datamodule(), ckpt_path=next(tmp_path.glob(f"*step={step}.ckpt"))
        )
        assert resumed.seen == full.seen[step:]


def test_interrupted_or_empty_stream_prepare(tmp_path: Path) -> None:
    """Shards without a manifest (a killed stream-prepare) are replaced with --overwrite; an
    input with no proteins left writes nothing and says why."""
    fa = tmp_path / "a.fa"
    fa.write_text(">a\nMKV\n>b\nMKVL\n")
    out = tmp_path / "sh"
    out.mkdir()
    (out / "shard-000000.tar").write_bytes(b"half a tar")
    with pytest.raises(FileExistsError, match="partial shard set.*--overwrite"):
        write_shards(fa, out, progress=False)
    report = write_shards(fa, out, progress=False, overwrite=True)
    assert report.proteins == 2 and len(ShardSet(str(out))) == 2
    with pytest.raises(ShardError, match="no proteins to write.*2 shorter than min_length"):
        write_shards(fa, tmp_path / "none", ReadOptions(min_length=10), progress=False)
    assert not (tmp_path / "none" / "shards.json").exists()
