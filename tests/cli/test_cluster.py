"""The SLURM/submitit launcher configs and ckpt_path=auto (cli/cluster.py)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationResolutionError

from protein_performer.cli.config import ConfigError, build_setup, compose_train


def test_slurm_launcher_derives_tasks_and_nodes_from_trainer(tmp_path):
    cfg = compose_train(
        ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=3"],
        output_dir=tmp_path,
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["tasks_per_node"] == 4 and launcher["gpus_per_node"] == 4
    assert launcher["nodes"] == 3
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["submitit_folder"].startswith(str(cfg.hydra.sweep.dir))


def test_slurm_launcher_needs_a_device_count():
    cfg = compose_train(["hydra/launcher=slurm", "trainer=ddp"])  # devices=-1
    with pytest.raises(InterpolationResolutionError, match="trainer.devices must be"):
        _ = cfg.hydra.launcher.tasks_per_node


def test_ckpt_path_auto(tmp_path, monkeypatch):
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    cfg = compose_train(["ckpt_path=auto"], output_dir=tmp_path)
    assert build_setup(cfg).ckpt_path is None  # nothing there yet: from scratch
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    # the file found is read before Lightning opens it: this one is no checkpoint
    with pytest.raises(ConfigError, match="ckpt_path: cannot resume: .*last.ckpt"):
        build_setup(cfg)
    # (the pre-flight check has its own tests: tests/reliability/test_bad_checkpoints.py)
    monkeypatch.setattr("protein_performer.training.resume.check_resume", lambda *a: 0)
    assert build_setup(cfg).ckpt_path == tmp_path / "checkpoints" / "last.ckpt"
    # null means fresh outside submitit, auto inside a submitit job (a requeue resumes)
    cfg = compose_train([], output_dir=tmp_path)
    assert build_setup(cfg).ckpt_path is None
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    assert build_setup(cfg).ckpt_path == tmp_path / "checkpoints" / "last.ckpt"


def test_slurm_plugins_switch_off_lightning_requeue(monkeypatch):
    from protein_performer.cli.cluster import slurm_plugins

    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    assert slurm_plugins() == []
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    (env,) = slurm_plugins()
    assert type(env).__name__ == "SLURMEnvironment" and env.auto_requeue is False
