"""scripts/demo.py (make demo's five stages) end to end on a tiny model and the small corpus;
the closing summary's figure and text (protein_performer/study/demo.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.text import Text

from common import REPO, SAMPLE_DIR, TINY_RUN
from protein_performer.study.demo import read_demo, summary_figure, summary_text

TRAIN = [o for o in TINY_RUN if not o.startswith(("data.train=", "data.valid="))] + [
    "model.n_layers=2",
    "attention.nb_features=16",
    "budget.minutes=null",
    "trainer.limit_val_batches=1",
]
EVAL = ["max_proteins=6"]
ANALYZE = [
    "n_proteins=6",
    "n_permutations=50",
    "favor_error_proteins=2",
    "favor_error_features=[4,8]",
]


def _load_driver():
    spec = importlib.util.spec_from_file_location("demo_driver", REPO / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "demo"
    argv = [
        sys.executable,
        str(REPO / "scripts" / "demo.py"),
        "--out",
        str(out),
        "--corpus",
        str(SAMPLE_DIR),
    ]
    for stage, overrides in (("train", TRAIN), ("eval", EVAL), ("analyze", ANALYZE)):
        argv += [a for o in overrides for a in (f"--{stage}", o)]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"},
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    return out, log


@pytest.mark.slow
def test_five_stages_with_progress_and_paths(demo_run):
    out, log = demo_run
    for k, key in enumerate(("data", "train", "eval", "analyze", "summary"), start=1):
        assert re.search(rf"\[{k}/5\] .* \(elapsed \d+:\d\d; ", log), key
        assert f"[{k}/5] {key} done in " in log
    assert "[2/5] train done in " in log and str(out / "train" / "checkpoints" / "last.ckpt") in log
    assert "ETA unknown (training has no budget)" in log  # budget.minutes=null: no training ETA
    timings = json.loads((out / "timings.json").read_text())
    assert timings["failed"] is None
    assert set(timings["stages"]) == {"data", "train", "eval", "analyze", "summary"}
    assert timings["total_minutes"] >= sum(timings["stages"].values()) - 1e-9
    assert (out / "summary.png").stat().st_size > 10_000
    assert "=== protein-performer demo: summary ===" in log


@pytest.mark.slow
def test_summary_text_names_every_number_the_figure_shows(demo_run):
    out, log = demo_run
    numbers = read_demo(out)
    text = summary_text(numbers)
    assert text in log.replace("\r", "")  # what the summary stage printed
    assert numbers.steps == 2 and numbers.max_steps == 2
    held = numbers.first
    assert held.label == "valid.fasta.gz" and held.n_proteins == 6
    assert f"ratio {held.ratio:.3f}" in text
    assert set(numbers.favor_error) == {4, 8}
    fig = summary_figure(numbers)
    # the axes' scales (tick labels of every axis and colour bar) are not numbers it reports
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) for t in axis.findobj(Text)}
    # titles, legends, the suptitle: every text a reader sees apart from the axis scales
    shown = [t.get_text() for t in fig.findobj(Text) if id(t) not in ticks and t.get_text()]
    found = [n for s in shown for n in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", s)]
    assert len(found) >= 8, shown  # ratio, perplexity, unigram, target, r/p twice, steps
    missing = [n for n in found if n not in text]
    assert not missing, (missing, shown)


def test_summary_names_the_missing_stage_output(tmp_path):
    (tmp_path / "train").mkdir()
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo_summary.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"demo_summary: {tmp_path / 'train' / 'metrics.json'} is missing: "
        "did the stage that writes it fail?"
    )


def test_eta_and_training_budget():
    driver = _load_driver()
    assert driver.training_minutes([]) == 7.5  # the recipe's budget
    assert driver.training_minutes(["budget.minutes=3"]) == 3.0
    assert driver.training_minutes(["budget.minutes=null"]) is None
    args = driver.parse_args(["--out", "x"])
    stages = driver.build_stages(args)
    assert [s.key for s in stages] == ["data", "train", "eval", "analyze", "summary"]
    nominal = driver.NOMINAL_S
    after_training = nominal["eval"] + nominal["analyze"] + nominal["summary"]
    # before training: the budget + its start-up + the rest, scaled by the machine's speed 2
    assert driver.eta_seconds(stages, 1, 7.5, 2.0) == pytest.approx(450 + 40 + 2 * after_training)
    assert driver.eta_seconds(stages, 2, None, 1.0) == pytest.approx(after_training)
    assert driver.eta_seconds(stages, 1, None, 1.0) is None


def test_bad_corpus_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--corpus", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert f"--corpus: {tmp_path / 'train.fasta.gz'} not found" in result.stderr


def test_training_speed_from_the_budget_record(tmp_path):
    driver = _load_driver()
    record = tmp_path / "time_budget.json"
    assert driver.training_speed(record, 1.5) == 1.5  # no record: the earlier estimate
    record.write_text(json.dumps({"steps_per_s": driver.REFERENCE_STEPS_PER_S / 4}))
    assert driver.training_speed(record, 1.0) == pytest.approx(4.0)
    record.write_text(json.dumps({"steps_per_s": None}))
    assert driver.training_speed(record, 1.0) == 1.0
