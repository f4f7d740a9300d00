"""Two jobs of a sweep through the submitit launcher (hydra/launcher=local), on CPU: each
job is its own process, lands in its own run directory of the sweep, and writes metrics;
submitit's logs stay inside the sweep directory."""

from __future__ import annotations

import json

import pytest

# pytest puts this folder on sys.path (no __init__.py): the DDP test's tiny config
from common import assert_plausible_perplexity, run_train_cli  # noqa: E402
from test_ddp import TINY  # noqa: E402


@pytest.mark.slow
def test_two_jobs_through_submitit_local(tmp_path):
    sweep = tmp_path / "sweep"
    run_train_cli(
        [
            "-m",
            "hydra/launcher=local",
            "objective=mlm,clm",
            *TINY,
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        timeout=300,
    )
    for job in ("0", "1"):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert_plausible_perplexity(metrics.get("valid/perplexity"))
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
    assert (sweep / ".submitit").is_dir()
    assert not (tmp_path / "outputs").exists()
