"""DataConfig validation and ProteinDataModule: sharding, determinism, resume, real files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.config import DataConfig
from protein_performer.data.datamodule import ProteinDataModule
from protein_performer.data.datasets import ProteinDataset
from protein_performer.data.source import InMemoryProteins

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample"


def toy_source(n: int, seed: int, lo: int = 1, hi: int = 80) -> InMemoryProteins:
    rng = np.random.default_rng(seed)
    arrays = [
        rng.choice(ALPHABET.residue_idx, size=int(rng.integers(lo, hi + 1))).astype(np.uint8)
        for _ in range(n)
    ]
    return InMemoryProteins.from_arrays(arrays, [f"Q{seed}_{i}" for i in range(n)])


SOURCES = {
    "train": toy_source(53, 0),
    "valid": toy_source(11, 1),
    "test": toy_source(9, 2),
    "test_ood": toy_source(7, 3),
}


def make_cfg(**kw) -> DataConfig:
    base = dict(train=["train.fa"], valid=["valid.fa"], max_length=24, batch_size=4, seed=3)
    base.update(kw)
    return DataConfig(**base)


def module(rank: int | None = None, world: int | None = None, **kw) -> ProteinDataModule:
    dm = ProteinDataModule(make_cfg(**kw), rank=rank, world_size=world, sources=SOURCES)
    dm.setup("fit")
    return dm


def batches(loader) -> list[dict]:
    return [b for b in loader]


# -- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw,message",
    [
        (
            dict(max_length=1),
            "data.max_length must be > 2 (room for <cls>, <eos> and a residue), got 1",
        ),
        (dict(mode="stream"), "data.mode must be one of protein, concat, packed, got 'stream'"),
        (dict(batch_size=0), "data.batch_size must be >= 1, got 0"),
        (dict(on_invalid="warn"), "data.on_invalid must be one of error, skip"),
        (dict(max_tokens=10), "data.max_tokens must be >= data.max_length"),
        (dict(mode="concat", max_tokens=100), "applies to mode=protein only"),
        (dict(num_workers=-1), "data.num_workers must be >= 0"),
        (
            dict(min_length=5, max_protein_length=4),
            "data.max_protein_length must be >= data.min_length",
        ),
        (dict(train=[]), "data.train must name at least one"),
        (dict(cluster_tsv="c.tsv", max_tokens=100), "cannot be combined"),
    ],
)
def test_config_validation_names_field(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_cfg(**kw)


def test_config_missing_path_names_field(tmp_path: Path) -> None:
    cfg = make_cfg(train=str(tmp_path / "x.fasta"))
    assert cfg.train == [str(tmp_path / "x.fasta")]
    with pytest.raises(
        FileNotFoundError, match=r"data.train: no such file .*x.fasta.* \(give a FASTA"
    ):
        cfg.check_paths()
    with pytest.raises(FileNotFoundError, match="data.train"):
        ProteinDataModule(cfg).setup("fit")


# -- the sharding property ------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [dict(), dict(max_tokens=60), dict(mode="concat", max_length=32)],
    ids=["fixed", "token_budget", "concat"],
)
def test_two_workers_two_ranks_see_every_example_once(kw: dict) -> None:
    per_rank = []
    for rank in (0, 1):
        dm = module(rank, 2, num_workers=2, **kw)
        loader = dm.train_dataloader()
        per_rank.append(batches(loader))
        assert len(per_rank[-1]) == len(loader)
    n = module(**kw).n_train_examples
    assert len(per_rank[0]) == len(per_rank[1]), "equal steps per rank"
    seen = Counter(i for bs in per_rank for b in bs for i in b["index"].tolist())
    assert set(seen) == set(range(n))
    sampler = module(0, 2, **kw).train_sampler()
    plan = sampler.global_batches(0)
    padding = Counter(i for k in range(sampler.n_padded_batches()) for i in plan[k % len(plan)])
    assert Counter({i: c - 1 for i, c in seen.items() if c > 1}) == padding
    # validation is sharded without padding: exactly once
    val = [
        i
        for r in (0, 1)
        for b in module(r, 2, num_workers=2, **kw).val_dataloader()
        for i in b["index"].tolist()
    ]
    assert sorted(val) == list(range(len(module(**kw).datasets["valid"])))


def test_workers_do_not_change_batches() -> None:
    a = batches(module(num_workers=0).train_dataloader())
    b = batches(module(num_workers=2).train_dataloader())
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x["tokens"], y["tokens"]) and torch.equal(x["mask"], y["mask"])


def test_deterministic_given_seed_and_epoch() -> None:
    def run(seed: int, epoch: int):
        loader = module(seed=seed).train_dataloader()
        loader.batch_sampler.set_epoch(epoch)
        return [b["tokens"] for b in loader]

    first = run(3, 1)
    again = run(3, 1)
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    other = run(3, 2)
    assert any(x.shape != y.shape or not torch.equal(x, y) for x, y in zip(first, other))


def test_batches_are_well_formed() -> None:
    dm = module()
    for b in dm.train_dataloader():
        assert b["tokens"].shape == b["mask"].shape and b["tokens"].shape[1] <= 24
        lengths = b["mask"].sum(1)
        rows = torch.arange(len(lengths))
        # proteins that fit are whole; a cropped window (length 24) may lack <cls> / <eos>
        whole = lengths < 24
        assert bool((b["tokens"][whole, 0] == ALPHABET.cls_idx).all())
        assert bool((b["tokens"][rows[whole], lengths[whole] - 1] == ALPHABET.eos_idx).all())
        specials = (b["tokens"] == ALPHABET.cls_idx) | (b["tokens"] == ALPHABET.eos_idx)
        assert bool((specials & b["mask"]).sum(1).le(2).all())


def test_crop_epoch_follows_sampler_epoch() -> None:
    dm = module(max_length=8)
    loader = dm.train_dataloader()
    loader.batch_sampler.set_epoch(5)
    assert dm.datasets["train"].epoch == 5


# -- resume ---------------------------------------------------------------------------------
@pytest.mark.parametrize("num_workers", [0, 2])
def test_state_dict_resume_continues_mid_epoch(num_workers: int) -> None:
    dm = module(1, 2, num_workers=num_workers)
    loader = dm.train_dataloader()
    loader.batch_sampler.set_epoch(1)
    full = [b["index"].tolist() for b in loader]
    k = 2
    it = iter(loader)
    for _ in range(k):
        next(it)
    state = dm.state_dict()
    assert state["train_sampler"]["batches_consumed"] == k and state["train_sampler"]["epoch"] == 1
    del it
    fresh = module(1, 2, num_workers=num_workers)
    fresh.load_state_dict(state)
    loader2 = fresh.train_dataloader()
    loader2.batch_sampler.set_epoch(1)
    assert [b["index"].tolist() for b in loader2] == full[k:]
    # a finished epoch is saved as the start of the next one
    after = fresh.state_dict()["train_sampler"]
    assert (after["epoch"], after["batches_consumed"]) == (2, 0)


# -- splits and statistics ------------------------------------------------------------------
def test_test_dataloaders_and_names() -> None:
    dm = ProteinDataModule(make_cfg(test=["t.fa"], test_ood=["o.fa"]), sources=SOURCES)
    dm.setup("test")
    loaders = dm.test_dataloader()
    assert dm.test_names == ["test", "test_ood"] and len(loaders) == 2
    assert sorted(i for b in loaders[1] for i in b["index"].tolist()) == list(range(7))
    only = ProteinDataModule(make_cfg(), sources={k: SOURCES[k] for k in ("train", "valid")})
    with pytest.raises(ValueError, match="data.test and data.test_ood are both empty"):
        only.test_dataloader()


def test_residue_frequencies_match_reference() -> None:
    dm = module()
    freq = dm.residue_frequencies()
    src = SOURCES["train"]
    ref = np.zeros(len(ALPHABET))
    for i in range(len(src)):
        for t in src[i]:
            ref[int(t)] += 1
    assert freq.dtype == np.float64 and freq.shape == (31,)
    np.testing.assert_allclose(freq, ref / ref.sum(), rtol=0, atol=1e-15)


def test_cluster_sampling_in_datamodule(tmp_path: Path) -> None:
    src = SOURCES["train"]
    tsv = tmp_path / "clusters.tsv"
    # clusters of 5 consecutive proteins; one member absent from the corpus
    lines = [f"{src.accession(i - i % 5)}\t{src.accession(i)}" for i in range(50)]
    tsv.write_text("\n".join(lines + [f"{src.accession(0)}\tNOT_THERE"]) + "\n")
    dm = module(cluster_tsv=str(tsv))
    rep = dm.cluster_report
    assert rep.n_members_missing == 1 and rep.n_unclustered == 3 and rep.n_clusters == 13
    drawn = [i for b in dm.train_dataloader() for i in b["index"].tolist()]
    assert len(drawn) == 13
    assert len({dm.cluster_ids[i] for i in drawn}) == 13


# -- real files -----------------------------------------------------------------------------
def test_datamodule_on_embedded_sample() -> None:
    cfg = DataConfig(
        train=[str(SAMPLE / "train.fasta.gz")],
        valid=[str(SAMPLE / "valid.fasta.gz")],
        test=[str(SAMPLE / "valid.fasta.gz")],
        max_length=64,
        batch_size=256,
    )
    dm = ProteinDataModule(cfg)
    dm.setup("fit")
    assert dm.n_train_examples == 5000
    loader = dm.train_dataloader()
    first = next(iter(loader))
    assert first["tokens"].shape[0] == 256 and first["tokens"].shape[1] <= 64
    assert sum(len(b["index"]) for b in dm.val_dataloader()) == 500
    freq = dm.residue_frequencies()
    assert abs(freq.sum() - 1) < 1e-12 and freq[ALPHABET.special_idx].sum() == 0
    assert freq[ALPHABET.index("L")] > 0.05  # leucine is the commonest residue
    concat = ProteinDataModule(
        DataConfig(train=cfg.train, valid=cfg.valid, mode="concat", max_length=512)
    )
    concat.setup("fit")
    ds = concat.datasets["train"]
    assert ds.stream_length == int(concat.sources["train"].lengths.sum()) + 5000
    # packed: training windows of whole <cls> p <eos> examples, validation one per protein
    packed = ProteinDataModule(
        DataConfig(train=cfg.train, valid=cfg.valid, mode="packed", max_length=256)
    )
    packed.setup("fit")
    train_ds, valid_ds = packed.datasets["train"], packed.datasets["valid"]
    assert train_ds.layout == "example" and isinstance(valid_ds, ProteinDataset)
    assert train_ds.stream_length == int(packed.sources["train"].lengths.sum()) + 2 * 5000
    batch = next(iter(packed.train_dataloader()))
    assert batch["tokens"].shape == (16, 256) and bool(batch["mask"].all())  # no padding


def test_datamodule_on_prepared_store(tmp_path: Path) -> None:
    from protein_performer.data.storage.prepare import prepare_store

    fasta = SAMPLE / "valid.fasta.gz"
    prepare_store(fasta, tmp_path / "store", progress=False)
    from protein_performer.data.fasta.reading import load_proteins

    reference, _ = load_proteins([str(fasta)])
    cfg = DataConfig(
        train=[str(tmp_path / "store")], valid=[str(fasta)], max_length=40, batch_size=50
    )
    dm = ProteinDataModule(cfg)
    dm.setup("fit")
    assert dm.n_train_examples == len(reference) == 500
    fasta_dm = ProteinDataModule(
        DataConfig(train=[str(fasta)], valid=[str(fasta)], max_length=40, batch_size=50)
    )
    fasta_dm.setup("fit")
    for a, b in zip(dm.train_dataloader(), fasta_dm.train_dataloader()):
        assert torch.equal(a["tokens"], b["tokens"])
    np.testing.assert_allclose(dm.residue_frequencies(), fasta_dm.residue_frequencies(), atol=1e-12)


# -- with Lightning -------------------------------------------------------------------------
# Lightning warns that a plain DataLoader is not resumable: the DataModule's state is what
# makes it so (this test checks exactly that).
@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before")
@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
def test_lightning_resume_mid_epoch_is_exact(tmp_path: Path) -> None:
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    class Recorder(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[tuple[int, list[int], torch.Tensor]] = []

        def training_step(self, batch, batch_idx):
            self.seen.append((self.current_epoch, batch["index"].tolist(), batch["tokens"].clone()))
            return (self.w * batch["tokens"].float().mean()).sum()

        def validation_step(self, batch, batch_idx):
            return None

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    def trainer(**kw) -> pl.Trainer:
        return pl.Trainer(
            max_epochs=2,
            accelerator="cpu",
            devices=1,
            logger=False,
            use_distributed_sampler=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            **kw,
        )

    full = Recorder()
    ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=5, save_top_k=-1, save_last=False)
    at_epoch_end = ModelCheckpoint(dirpath=tmp_path / "epochs", every_n_epochs=1, save_top_k=-1)
    trainer(callbacks=[ckpt, at_epoch_end]).fit(full, datamodule=module(num_workers=2))
    steps_per_epoch = len(module().train_dataloader())
    assert len(full.seen) == 2 * steps_per_epoch
    assert [e for e, _, _ in full.seen] == [0] * steps_per_epoch + [1] * steps_per_epoch
    epoch_orders = [[i for e, b, _ in full.seen if e == k for i in b] for k in (0, 1)]
    assert epoch_orders[0] != epoch_orders[1] and sorted(epoch_orders[0]) == sorted(epoch_orders[1])
    ends = sorted((tmp_path / "epochs").glob("epoch=0-*.ckpt"))
    for step, path in [
        (5, None),
        (20, None),
        (steps_per_epoch, ends[0]),
    ]:  # mid epoch 0, 1; end of 0
        path = path or next(tmp_path.glob(f"*step={step}.ckpt"))
        resumed = Recorder()
        trainer(enable_checkpointing=False).fit(
            resumed, datamodule=module(num_workers=2), ckpt_path=path
        )
        assert [(e, i) for e, i, _ in resumed.seen] == [(e, i) for e, i, _ in full.seen[step:]]
        assert all(
            torch.equal(a, b) for (_, _, a), (_, _, b) in zip(resumed.seen, full.seen[step:])
        )


@pytest.mark.shared_data
def test_cluster_tsv_of_the_shared_corpus(swissprot) -> None:
    tsv = swissprot / "train_clusters30.tsv.gz"
    cfg = DataConfig(
        train=[str(SAMPLE / "train.fasta.gz")],
        valid=[str(SAMPLE / "valid.fasta.gz")],
        cluster_tsv=str(tsv),
        max_length=32,
        batch_size=512,
    )
    dm = ProteinDataModule(cfg)
    dm.setup("fit")
    rep = dm.cluster_report
    # the sample's proteins are training proteins: all clustered, every other member missing
    assert rep.n_unclustered == 0
    assert rep.n_members_missing == rep.n_lines - 5000
    assert len(np.unique(dm.cluster_ids)) == rep.n_clusters < 5000
    drawn = [i for b in dm.train_dataloader() for i in b["index"].tolist()]
    assert (
        len(drawn) == rep.n_clusters
        and len({int(dm.cluster_ids[i]) for i in drawn}) == rep.n_clusters
    )


def test_store_sharded_over_workers_and_ranks(tmp_path: Path) -> None:
    from protein_performer.data.storage.prepare import prepare_store

    fasta = SAMPLE / "valid.fasta.gz"
    prepare_store(fasta, tmp_path / "store", progress=False)
    cfg = dict(
        train=[str(tmp_path / "store")],
        valid=[str(fasta)],
        max_length=40,
        batch_size=64,
        num_workers=2,
    )
    seen = Counter()
    steps = []
    for rank in (0, 1):
        dm = ProteinDataModule(DataConfig(**cfg), rank=rank, world_size=2)
        dm.setup("fit")
        bs = [b["index"].tolist() for b in dm.train_dataloader()]
        steps.append(len(bs))
        seen.update(i for b in bs for i in b)
    assert steps[0] == steps[1] == 4  # 8 batches of <= 64 over 500 proteins
    assert set(seen) == set(range(500)) and sum(seen.values()) == 500


# -- many nodes: the store is mapped, never copied; 2 nodes x 2 ranks x 3 workers ----------
class _WorkerView(torch.utils.data.Dataset):
    """Reports, from inside a DataLoader worker, how the store reached it."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        from torch.utils.data import get_worker_info

        tokens = self.dataset.source.tokens
        base = tokens.base
        assert get_worker_info() is not None
        return {
            "index": i,
            "memmap": isinstance(base, np.memmap),
            "mode": getattr(base, "mode", None),
            "writeable": bool(tokens.flags.writeable),
        }


def test_store_is_mapped_read_only_in_every_worker(tmp_path: Path) -> None:
    import pickle

    from protein_performer.data.storage.prepare import prepare_store

    prepare_store(SAMPLE / "train.fasta.gz", tmp_path / "store", progress=False)
    for mode in ("protein", "concat", "packed"):
        dm = ProteinDataModule(
            DataConfig(
                train=[str(tmp_path / "store")],
                valid=[str(tmp_path / "store")],
                mode=mode,
                max_length=64,
                num_workers=2,
            )
        )
        dm.setup("fit")
        ds = dm.datasets["train"]
        # what a spawn/forkserver worker receives: the path, not the 1.8 MB of tokens or
        # 40 kB of lengths
        assert len(pickle.dumps(ds)) < 1000, mode
        again = pickle.loads(pickle.dumps(ds))
        assert torch.equal(again[7]["tokens"], ds[7]["tokens"])
    views = list(
        torch.utils.data.DataLoader(
            _WorkerView(dm.datasets["train"]), batch_size=None, sampler=[0, 1, 2, 3], num_workers=2
        )
    )
    assert all(v["memmap"] and v["mode"] == "r" and not v["writeable"] for v in views), views


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
def test_store_two_nodes_two_ranks_three_workers_every_protein_once(tmp_path: Path) -> None:
    from protein_performer.data.storage.prepare import prepare_store

    prepare_store(SAMPLE / "valid.fasta.gz", tmp_path / "store", progress=False)
    cfg = dict(
        train=[str(tmp_path / "store")],
        valid=[str(tmp_path / "store")],
        max_length=40,
        batch_size=9,
        num_workers=3,
    )
    world = 2 * 2  # nodes x ranks per node: Lightning's global rank = node * 2 + local rank
    seen, steps, padded = Counter(), [], 0
    for rank in range(world):
        dm = ProteinDataModule(DataConfig(**cfg), rank=rank, world_size=world)
        dm.setup("fit")
        loader = dm.train_dataloader()
        bs = [b["index"].tolist() for b in loader]
        assert len(bs) == len(loader)
        steps.append(len(bs))
        seen.update(i for b in bs for i in b)
        padded = dm._train_sampler.n_padded_batches()
    # 500 proteins in 56 batches of <= 9: 14 per rank, no padding needed; every protein once
    assert steps == [14] * 4 and padded == 0
    assert set(seen) == set(range(500)) and sum(seen.values()) == 500
    # 5 ranks: 56 batches padded to 60 by repeating the epoch's first 4 (counted)
    seen5 = Counter()
    for rank in range(5):
        dm = ProteinDataModule(DataConfig(**cfg), rank=rank, world_size=5)
        dm.setup("fit")
        seen5.update(i for b in dm.train_dataloader() for i in b["index"].tolist())
        assert len(dm.train_dataloader()) == 12 and dm._train_sampler.n_padded_batches() == 4
    assert set(seen5) == set(range(500)) and sum(seen5.values()) == 500 + 4 * 9
    for rank in range(world):  # validation: exactly once, no padding
        dm = ProteinDataModule(DataConfig(**cfg), rank=rank, world_size=world)
        seen.subtract(i for b in dm.val_dataloader() for i in b["index"].tolist())
    assert all(c == 0 for c in seen.values())
