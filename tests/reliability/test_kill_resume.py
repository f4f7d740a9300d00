"""kill -9 of a real training process mid-run, then the same command with ``ckpt_path=auto``:
the loss and every metric of every step equal those of an uninterrupted run, and the run
directory's csv/metrics.csv holds each step once (the rows before the kill are kept, the rows
after the last checkpoint are logged again, not twice).

The checkpoint the resume starts from is written by ``callbacks.last_checkpoint.
every_n_train_steps`` alone (no validation before the kill): the one knob that bounds the
work a kill loses (README "Faults and resume").
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from common import SAMPLE_DATA, TINY_RUN

EVERY = 3  # last.ckpt every 3 steps
KILL_AT = 7  # kill once step 7 is in metrics.csv: checkpoints at 3 and 6, rows past 6 logged
RUN = [
    *TINY_RUN,
    *SAMPLE_DATA,
    "trainer.max_steps=30",
    "trainer.val_check_interval=20",
    f"callbacks.last_checkpoint.every_n_train_steps={EVERY}",
    "test=false",
]
ENV = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def _steps(metrics: Path) -> list[int]:
    try:
        with open(metrics, newline="") as f:
            return [int(r["step"]) for r in csv.DictReader(f) if r.get("step")]
    except (FileNotFoundError, ValueError, KeyError):
        return []


def _train(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "protein_performer.train", *args],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _history(run_dir: Path) -> pd.DataFrame:
    """metrics.csv without the wall-clock columns (tokens/s differ between any two runs)."""
    frame = pd.read_csv(run_dir / "csv" / "metrics.csv")
    return frame.drop(columns=[c for c in frame.columns if "tokens_per_s" in c])


@pytest.mark.slow
def test_kill_9_and_resume_equals_uninterrupted(tmp_path, one_thread):
    from protein_performer.cli.config import compose_train
    from protein_performer.cli.train import train

    train(compose_train(RUN, output_dir=tmp_path / "full"))

    run_dir = tmp_path / "killed"
    args = [*RUN, f"hydra.run.dir={run_dir}"]
    proc = _train(args, tmp_path)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if max(_steps(run_dir / "csv" / "metrics.csv"), default=-1) >= KILL_AT:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"not killed mid-run:\n{out[-3000:]}"
    steps = _steps(run_dir / "csv" / "metrics.csv")
    assert KILL_AT <= max(steps) < 29, steps
    # the knob's last.ckpt, and no other checkpoint (no validation ran before the kill)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]

    proc = _train([*args, "ckpt_path=auto"], tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-5000:]
    assert "ckpt_path=auto: resuming from" in out and "not resumable" not in out, out[-5000:]

    full, resumed = _history(tmp_path / "full"), _history(run_dir)
    assert list(resumed.columns) == list(full.columns)
    # every row, loss and metric, in order; each step's rows once
    pd.testing.assert_frame_equal(resumed, full, check_exact=True)
    a = torch.load(tmp_path / "full/checkpoints/last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=False)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
