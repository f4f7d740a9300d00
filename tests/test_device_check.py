"""scripts/device_check.sh, the bounded GPU check, run in its CPU-safe forms: --dry-run and
--device cpu --quick (every step at toy sizes: env, parity, benchmarks, training, report)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_check.sh"


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_dry_run_lists_every_step_and_writes_nothing(tmp_path):
    proc = _run("--dry-run", "--out", str(tmp_path / "dc"))
    assert proc.returncode == 0, proc.stderr
    steps = [line.split(",")[0].lstrip("[") for line in proc.stdout.splitlines()]
    assert steps == [
        "env",
        "parity",
        "bench_bf16",
        "bench_fp32",
        "bench_tf32",
        "bench_chunk64",
        "bench_chunk128",
        "bench_chunk256",
        "train",
        "report",
    ]
    assert (
        "--device cuda" in proc.stdout
        and "--lengths 1024 2048 4096 8192 16384 32768" in proc.stdout
    )
    assert "trainer.max_steps=200" in proc.stdout and "trainer.precision=bf16-mixed" in proc.stdout
    assert not (tmp_path / "dc").exists()


def test_bad_arguments_are_named(tmp_path):
    proc = _run("--device", "tpu", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--device must be cuda or cpu, got 'tpu'" in proc.stderr
    proc = _run("--fast")
    assert proc.returncode == 2 and "unknown argument '--fast'" in proc.stderr


@pytest.mark.slow
def test_quick_cpu_run_writes_the_report(tmp_path):
    proc = _run("--device", "cpu", "--quick", "--out", str(tmp_path), timeout=400)
    assert proc.returncode == 0, proc.stderr
    steps = pd.read_csv(tmp_path / "steps.tsv", sep="\t", names=["step", "seconds", "rc"])
    assert list(steps.step) == [
        "env",
        "parity",
        "bench_bf16",
        "bench_fp32",
        "bench_tf32",
        "bench_chunk128",
        "train",
        "report",
    ]
    assert list(steps.rc) == [0] * 8, steps
    parity = pd.read_csv(tmp_path / "parity.csv")
    assert parity["pass"].all() and {"loop", "chunkwise"} <= set(parity.impl)
    bf16 = pd.read_csv(tmp_path / "bench_bf16" / "attention.csv")
    assert {"exact", "favor_softmax", "favor_softmax:loop", "favor_relu:loop"} <= set(bf16.kind)
    assert bf16.time_ms.notna().all()
    chunked = pd.read_csv(tmp_path / "bench_chunk128" / "attention.csv")
    assert list(chunked.impl) == ["chunkwise"]
    report = (tmp_path / "report.md").read_text()
    for heading in (
        "## Summary",
        "exact / favor = **",
        "## Parity",
        "## Attention benchmark: bf16",
        "## Attention benchmark: tf32",
        "## Training",
    ):
        assert heading in report, heading
    for kind in ("exact", "favor_softmax", "favor_relu"):
        row = next(line for line in report.splitlines() if line.startswith(f"| {kind} | 2 |"))
        assert row.endswith("| yes |"), row
