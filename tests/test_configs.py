"""Every shipped config composes, resolves and validates into typed objects; bad values fail
with messages that name the field (lightning-hydra-template tests/test_configs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from protein_performer.cli.config import CONF_DIR, ConfigError, build_setup, compose_train

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / "../shared/data/swissprot2014"
SAMPLE_TRAIN = REPO / "data/sample/train.fasta.gz"
SAMPLE_VALID = REPO / "data/sample/valid.fasta.gz"

GROUPS = [
    "model",
    "attention",
    "objective",
    "optim",
    "data",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "experiment",
    "hparams_search",
]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


ALL = [(g, o) for g in GROUPS for o in _options(g)]

# inputs the option needs to be complete; data that is not shipped is swapped for the sample
EXTRA = {
    ("data", "fasta"): [f"data.train=[{SAMPLE_TRAIN}]", f"data.valid=[{SAMPLE_VALID}]"],
    ("data", "prepared"): [f"data.train=[{SAMPLE_TRAIN}]", f"data.valid=[{SAMPLE_VALID}]"],
    ("data", "streaming"): [f"data.train=[{SAMPLE_TRAIN}]", f"data.valid=[{SAMPLE_VALID}]"],
}
USES_SHARED = {
    ("data", "swissprot2014"),
    ("data", "concat"),
    ("experiment", "cpu_study"),
    ("experiment", "trembl_uni"),
    ("experiment", "trembl_bid"),
    ("experiment", "trembl_concat_8192"),
}


def test_every_group_has_options():
    for group in GROUPS:
        assert _options(group), f"conf/{group}/ is empty"
    assert {
        "exact",
        "favor_softmax",
        "favor_relu",
        "aft_full",
        "aft_local",
        "aft_simple",
        "aft_conv",
    } <= set(_options("attention"))
    assert {"tiny", "small", "base", "paper", "paper_concat"} <= set(_options("model"))
    assert {"sample", "fasta", "prepared", "swissprot2014", "concat", "streaming"} <= set(
        _options("data")
    )
    assert {"cpu", "gpu", "ddp", "fsdp"} <= set(_options("trainer"))
    assert {"wandb", "csv", "tensorboard", "none"} <= set(_options("logger"))


@pytest.mark.parametrize("group,option", ALL, ids=[f"{g}={o}" for g, o in ALL])
def test_compose_and_validate(group, option, tmp_path):
    if (group, option) in USES_SHARED and not SHARED.is_dir():
        pytest.skip("../shared/data/swissprot2014 is absent")
    overrides = [f"{group}={option}", *EXTRA.get((group, option), [])]
    if group == "model" and option == "paper_concat":
        overrides.append("data=concat" if SHARED.is_dir() else "data.max_length=256")
    cfg = compose_train(overrides, output_dir=tmp_path)
    # every interpolation resolves (paths, ${model.max_length}, ${seed}, ...)
    container = OmegaConf.to_container(cfg, resolve=True)
    assert container["paths"]["output_dir"] == str(tmp_path.resolve())
    setup = build_setup(cfg)
    assert setup.model.attention.kind == cfg.attention.kind
    assert setup.model.causal == (cfg.objective.name == "clm")
    assert setup.model.attention.causal == setup.model.causal
    assert setup.data.max_length <= setup.model.max_length
    for path in setup.data.train + setup.data.valid:
        assert Path(path).is_absolute() and Path(path).exists()


def test_streaming_urls_are_kept_as_given(tmp_path):
    # an object-store URL is not a path: neither resolved against the start directory nor
    # checked for existence here (the DataModule reads its manifest)
    cfg = compose_train(
        [
            "data=streaming",
            "data.train=[s3://bucket/trembl_shards]",
            f"data.valid=[{SAMPLE_VALID}]",
        ],
        output_dir=tmp_path,
    )
    setup = build_setup(cfg)
    assert setup.data.train == ["s3://bucket/trembl_shards"]
    assert setup.data.valid == [str(SAMPLE_VALID.resolve())]
    assert setup.data.shuffle_buffer == 10000 and setup.data.num_workers == 2


def test_paper_sizes():
    cfg = compose_train(["model=paper", "experiment=trembl_uni"])
    m = cfg.model
    assert (m.n_layers, m.n_heads, m.d_model, m.d_ff, m.dropout, m.max_length) == (
        36,
        8,
        512,
        1024,
        0.1,
        1024,
    )
    assert cfg.attention.nb_features == 256
    # the model size picks the feature count; the attention group's value wins when given
    assert compose_train(["model=tiny"]).attention.nb_features == 64
    assert compose_train(["model=tiny", "attention.nb_features=32"]).attention.nb_features == 32
    assert cfg.optim.lr == 1e-3 and list(cfg.optim.betas) == [0.9, 0.98]
    assert cfg.optim.eps == 1e-9 and cfg.optim.weight_decay == 0.1
    assert cfg.trainer.gradient_clip_val == 0.5
    c = compose_train(["experiment=trembl_concat_8192"])
    assert (c.model.n_layers, c.model.d_ff, c.model.max_length, c.data.mode) == (
        6,
        2048,
        8192,
        "concat",
    )
    assert compose_train(["experiment=trembl_bid"]).objective.name == "mlm"
    assert compose_train(["experiment=trembl_uni"]).objective.name == "clm"
    # the kernel is chosen by override, after the experiment
    assert compose_train(["experiment=trembl_uni", "attention=exact"]).attention.kind == "exact"


def test_callbacks_and_loggers_instantiate(tmp_path):
    import hydra

    cfg = compose_train(
        ["callbacks=early_stopping", "logger=wandb", "logger.wandb.mode=disabled"],
        output_dir=tmp_path,
    )
    for name, node in cfg.callbacks.items():
        assert hydra.utils.instantiate(node) is not None, name
    csv = hydra.utils.instantiate(cfg.logger.csv)
    assert Path(csv.log_dir).resolve() == (tmp_path / "csv").resolve()
    assert hydra.utils.instantiate(cfg.logger.wandb) is None  # disabled


def test_trainer_instantiates(tmp_path):
    import hydra

    cfg = compose_train([], output_dir=tmp_path)
    trainer = hydra.utils.instantiate(
        cfg.trainer, logger=False, use_distributed_sampler=False, enable_checkpointing=False
    )
    assert trainer.max_steps == cfg.trainer.max_steps


BAD = [
    (["attention.kind=nope"], "attention.kind must be one of"),
    (["attention.nb_features=0"], "attention.nb_features must be > 0"),
    (["data.max_length=512"], "data.max_length (512) must be <= model.max_length (256)"),
    (["data.train=[no/such/train.fasta.gz]"], "data.train: no such file"),
    (["data=fasta"], "data.train must name at least one"),
    (["ckpt_path=no/such.ckpt"], "ckpt_path: no such checkpoint"),
    (["objective.mask_prob=0"], "objective.mask_prob must be in (0, 1)"),
    (["+model.bogus=1"], "model: unknown field(s) ['bogus']"),
    # the objective decides causality; an attention group that says otherwise is an error
    (["+attention.causal=true"], "attention.causal (True) disagrees with model.causal (False)"),
    (
        ["objective=clm", "+attention.max_length=64"],
        "attention.max_length (64) disagrees with model.max_length (256)",
    ),
    (["objective.name=bert"], "objective.name must be one of ['clm', 'mlm'], got 'bert'"),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[b[1][:30] for b in BAD])
def test_validation_messages(overrides, message, tmp_path):
    cfg = compose_train(overrides, output_dir=tmp_path)
    with pytest.raises(ConfigError) as err:
        build_setup(cfg)
    assert message in str(err.value)


def test_relative_paths_resolve_against_start_dir(tmp_path, monkeypatch):
    import shutil

    shutil.copy(SAMPLE_VALID, tmp_path / "v.fasta.gz")
    monkeypatch.chdir(tmp_path)
    cfg = compose_train(
        ["data=fasta", "data.train=[v.fasta.gz]", "data.valid=[v.fasta.gz]"],
        output_dir=tmp_path / "run",
    )
    setup = build_setup(cfg)
    assert setup.data.train == [str(tmp_path / "v.fasta.gz")]
