"""scripts/demo.py (make demo's six stages) end to end on a tiny model, the small corpus and a
tiny pre-filled benchmark folder; the closing summary's figure and text
(protein_performer/study/demo.py); the benchmarks stage's skip option and offline path."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from common import REPO, SAMPLE_DIR, TINY_RUN
from matplotlib.text import Text
from scipy.stats import spearmanr

from protein_performer.benchmarks.dms_baselines import blosum62_scores
from protein_performer.benchmarks.dms_data import load_assays
from protein_performer.benchmarks.structure_tasks import TRAIN_CHAINS
from protein_performer.study.demo import read_demo, summary_figure, summary_text

sys.path.insert(0, str(REPO / "tests" / "benchmarks"))
from test_bio_tasks import write_chain  # noqa: E402
from test_dms import _data_dir as write_amyloid  # noqa: E402

HELD_OUT = "0aaaA"  # sorts before every training chain: the one chain the stage draws

TRAIN = [o for o in TINY_RUN if not o.startswith(("data.train=", "data.valid="))] + [
    "model.n_layers=2",
    "model.attention.nb_features=16",
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
def bench_dir(tmp_path_factory) -> Path:
    """A benchmark folder as fetch-benchmarks lays it out: mavenn's amyloid file (6 variants)
    and the 20 training chains of the contacts task + one held-out chain (40 residues each)."""
    root = write_amyloid(tmp_path_factory.mktemp("bench"))
    (root / "dssp").mkdir()
    rng = np.random.default_rng(0)
    for name in (*TRAIN_CHAINS, HELD_OUT):
        write_chain(root / "dssp", name, rng)
    return root


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, bench_dir) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "demo"
    argv = [
        sys.executable,
        str(REPO / "scripts" / "demo.py"),
        "--out",
        str(out),
        "--corpus",
        str(SAMPLE_DIR),
        "--benchmark-data",
        str(bench_dir),
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


STAGES = ("data", "train", "eval", "analyze", "benchmarks", "summary")


@pytest.mark.slow
def test_six_stages_with_progress_and_paths(demo_run):
    out, log = demo_run
    for k, key in enumerate(STAGES, start=1):
        assert re.search(rf"\[{k}/6\] .* \(elapsed \d+:\d\d; ", log), key
        assert f"[{k}/6] {key} done in " in log
    assert "[2/6] train done in " in log and str(out / "train" / "checkpoints" / "last.ckpt") in log
    assert "ETA unknown (training has no budget)" in log  # budget.minutes=null: no training ETA
    timings = json.loads((out / "timings.json").read_text())
    assert timings["failed"] is None
    assert set(timings["stages"]) == set(STAGES)
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
    # trained | random init | BLOSUM62: one colour bar each, no empty extra one
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 3
    # the axes' scales (tick labels of every axis and colour bar) are not numbers it reports
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) for t in axis.findobj(Text)}
    # titles, legends, the suptitle: every text a reader sees apart from the axis scales
    shown = [t.get_text() for t in fig.findobj(Text) if id(t) not in ticks and t.get_text()]
    found = [n for s in shown for n in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", s)]
    assert len(found) >= 8, shown  # ratio, perplexity, unigram, target, r/p twice, steps
    missing = [n for n in found if n not in text]
    assert not missing, (missing, shown)
    # a machine that fit fewer steps than the recipe's cap is told so, with both counts
    short = summary_text(dataclasses.replace(numbers, steps=1, max_steps=3000))
    assert "this machine fit 1 of the recipe's 3000 steps" in short
    assert "this machine fit" not in text


@pytest.mark.slow
def test_benchmark_numbers_are_the_known_answers_and_in_the_summary(demo_run, bench_dir):
    out, log = demo_run
    bench = read_demo(out).benchmarks
    assert bench["status"] == "done" and bench["data"] == "present"  # pre-filled: no fetch
    a, c = bench["abeta42"], bench["contacts"]
    # BLOSUM62 on the 6 variants: scipy's Spearman of the summed substitution scores
    (assay,) = load_assays(bench_dir, ["Abeta42_Seuma2022"])
    assert a["n"] == 6
    expected = spearmanr(blosum62_scores(assay), assay.measured).statistic
    assert a["blosum62"]["spearman"] == pytest.approx(expected, abs=1e-12)
    rows = pd.read_csv(a["csv"])
    assert rows["blosum62"].tolist() == pytest.approx(blosum62_scores(assay).tolist())
    rho = spearmanr(rows["model"], rows["measured"]).statistic
    assert a["model"]["spearman"] == pytest.approx(rho, abs=1e-12)
    # the held-out chain's long-range P@L/5 and density, recomputed from the saved maps
    maps = np.load(out / "benchmarks" / "contact_map.npz")
    pred, true = maps["predicted"], maps["true"]
    assert c["chain"] == HELD_OUT and c["length"] == 40 == true.shape[0]
    assert c["method"] == "regression" and "20 training chains" in c["predictor"]
    far = [(i, j) for i in range(40) for j in range(i + 24, 40)]
    assert c["density"] == pytest.approx(np.mean([true[i, j] for i, j in far]))
    top = sorted(far, key=lambda ij: -pred[ij])[: c["top_pairs"]]
    assert c["top_pairs"] == 8 and c["precision"] == pytest.approx(np.mean([true[p] for p in top]))
    text = summary_text(read_demo(out))
    for number in (
        a["model"]["spearman"], a["model"]["ci_low"], a["blosum62"]["spearman"],
        c["precision"], c["density"],
    ):  # fmt: skip
        assert f"{number:.3f}" in text
    assert "Abeta42_Seuma2022, 6 variants: Spearman " in text  # all of them: no sample
    assert f"contacts of held-out chain {HELD_OUT} (L=40; " in text
    assert "Spearman" in log and "P@L/5" in log  # the stage's own line


@pytest.mark.slow
def test_summary_without_the_benchmarks_says_why(demo_run, tmp_path):
    """An offline benchmarks stage (its record: skipped) leaves the summary complete."""
    out, _ = demo_run
    copy = tmp_path / "demo"
    shutil.copytree(out, copy)
    record = {"status": "skipped", "reason": "benchmark data unavailable: offline"}
    (copy / "benchmarks" / "benchmarks.json").write_text(json.dumps(record))
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo_summary.py"), str(copy)],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr
    assert "benchmarks: skipped (benchmark data unavailable: offline)" in result.stdout
    assert "P@L/5" not in result.stdout and (copy / "summary.png").is_file()
    titles = [ax.get_title() for ax in summary_figure(read_demo(copy)).axes]
    assert not [t for t in titles if "P@L/5" in t or "Abeta42" in t], titles


def test_benchmarks_stage_offline_is_one_line_and_exit_0(tmp_path):
    ckpt = tmp_path / "m.ckpt"  # the fetch fails before any model is read
    ckpt.write_bytes(b"")
    out, empty = tmp_path / "bench_out", tmp_path / "no_data"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "protein_performer.study.demo_benchmarks",
            str(out),
            "--ckpt",
            str(ckpt),
            "--data-dir",
            str(empty),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_NO_INDEX": "1", "OMP_NUM_THREADS": "1"},  # pip finds nothing
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("benchmarks skipped (benchmark data unavailable")
    assert "mavenn" in lines[0] and lines[0].endswith("the demo goes on without them")
    record = json.loads((out / "benchmarks.json").read_text())
    assert record["status"] == "skipped" and "abeta42" not in record


def test_a_fetch_that_hangs_is_stopped(tmp_path, monkeypatch):
    from protein_performer.study import demo_benchmarks as stage

    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setattr(stage, "fetch_command", lambda _: sleeper)
    with pytest.raises(stage.BenchmarkDataUnavailable, match=r"did not finish in 0\.5 s"):
        stage.ensure_data(tmp_path, timeout_s=0.5)


def test_failed_optional_stage_lets_the_demo_finish(tmp_path, monkeypatch, capsys):
    driver = _load_driver()
    args = driver.parse_args(["--out", str(tmp_path)])
    stages = [
        driver.Stage(
            "benchmarks",
            "b",
            [sys.executable, "-c", "raise SystemExit(3)"],
            tmp_path,
            optional=True,
        ),
        driver.Stage("summary", "s", [sys.executable, "-c", "print('summary ran')"], tmp_path),
    ]
    monkeypatch.setattr(driver, "build_stages", lambda _: stages)
    assert driver.run(args) == 0
    log = capsys.readouterr().out
    assert "[1/2] benchmarks failed (exit status 3); the demo goes on without it" in log
    assert "[2/2] summary done in " in log
    assert json.loads((tmp_path / "timings.json").read_text())["failed"] is None


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
    assert [s.key for s in stages] == list(STAGES)
    assert stages[4].argv[-2:] == ["--data-dir", str(REPO / "data" / "benchmarks")]
    nominal = driver.NOMINAL_S
    after_training = sum(nominal[k] for k in ("eval", "analyze", "benchmarks", "summary"))
    # before training: the budget + its start-up + the rest, scaled by the machine's speed 2
    assert driver.eta_seconds(stages, 1, 7.5, 2.0) == pytest.approx(450 + 40 + 2 * after_training)
    assert driver.eta_seconds(stages, 2, None, 1.0) == pytest.approx(after_training)
    assert driver.eta_seconds(stages, 1, None, 1.0) is None


def test_no_benchmarks_skips_the_stage():
    driver = _load_driver()
    stages = driver.build_stages(driver.parse_args(["--out", "x", "--no-benchmarks"]))
    assert [s.key for s in stages] == [k for k in STAGES if k != "benchmarks"]
    help_text = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--help"],
        capture_output=True,
        text=True,
    ).stdout
    assert "--no-benchmarks" in help_text and "skip the benchmarks stage" in help_text


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


def test_permutation_p_reads_to_three_decimals():
    from protein_performer.study.demo import fmt_p

    assert fmt_p(1 / 1001) == "0.001"  # the floor of 1,000 permutations
    assert fmt_p(0.71) == "0.710"
    assert fmt_p(1e-5) == "1e-05"


def test_demo_seeds_passes_the_test_ood_file_and_tables_a_failed_seed(tmp_path, monkeypatch):
    """scripts/demo_seeds.py: --test-ood reaches each demo's evaluation; a seed whose demo
    wrote nothing is a 'failed' row, not a crash."""
    import runpy

    ood = tmp_path / "ood.fasta"
    ood.write_text(">a\nMKV\n")
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **kw: calls.append(cmd) or 1)
    script = runpy.run_path(str(REPO / "scripts" / "demo_seeds.py"))
    script["main"](["--seeds", "3", "--out", str(tmp_path / "o"), "--test-ood", str(ood)])
    assert len(calls) == 1 and "--extra-eval" in calls[0] and str(ood) in calls[0]
    assert "--seed" in calls[0] and "3" in calls[0]
    assert "failed" in (tmp_path / "o" / "seeds.csv").read_text()
