"""2-process DDP on CPU (gloo) through the CLI, inside a Hydra multirun: both ranks train,
the child process lands in the job's run directory (nothing is written elsewhere)."""

from __future__ import annotations

import json

import pytest
from common import TINY_RUN, assert_plausible_perplexity, run_train_cli

# trainer=ddp below chooses the strategy and devices
TINY = [o for o in TINY_RUN if not o.startswith(("trainer.strategy=", "trainer.devices="))]
TINY.append("model.attention.nb_features=16")


@pytest.mark.slow
def test_ddp_two_cpu_processes_in_multirun(tmp_path):
    sweep = tmp_path / "sweep"
    out = run_train_cli(
        [
            "-m",
            "objective=clm",
            *TINY,
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.precision=32-true",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        timeout=500,
    )
    run = sweep / "0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert_plausible_perplexity(metrics.get("valid/perplexity"))
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "world_size: 2" in out or "distributed_backend=gloo" in out or "Rank 1" in out
    # the rank-1 child ran in the job's directory: no stray run dirs in the start directory
    assert not (tmp_path / "outputs").exists()
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0"]
    # the child's Hydra log sits beside the parent's
    assert any(p.name.startswith("train_ddp_process_1") for p in run.iterdir()), list(run.iterdir())


@pytest.mark.slow
def test_ddp_ranks_agree_on_the_time_budget(tmp_path):
    """budget.minutes under DDP: rank 0's estimate is broadcast, so both ranks stop at the same
    step (differing counts would leave one rank waiting in an all-reduce until the timeout)."""
    run = tmp_path / "run"
    run_train_cli(
        [
            "objective=clm",
            *[o for o in TINY if not o.startswith("trainer.max_steps=")],
            "trainer.max_steps=100000",
            "trainer.val_check_interval=1000",
            "budget.minutes=0.1",
            "budget.probe_steps=5",
            "test=false",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.precision=32-true",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
    )
    record = json.loads((run / "time_budget.json").read_text())
    assert record["source"] == "probe" and record["max_steps"] < 100000, record
    assert record["steps_trained"] == record["max_steps"], record
