"""Every console script, fed an empty, a truncated and a mismatched input, stops with one
line on stderr that names the input and the fix, exit status 2 and no traceback.

Run in-process (the entry point's ``main`` with Hydra, as the console script runs it): a
subprocess per case would cost seconds of imports each. test_kill_resume.py runs real
processes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from battery import assert_one_line_error, run_script
from common import SAMPLE_DATA, SAMPLE_VALID, TINY_RUN

WILD_TYPE = "MKTAYIAKQRQISFVKSHFSRQ"


def _cases(ckpt: Path, bad: dict[str, Path], tmp: Path) -> list[tuple[str, str, list[str], list]]:
    """(script, kind, args, names the error must hold)."""
    out = f"out={tmp / 'out'}"
    train = [*TINY_RUN, *SAMPLE_DATA, "logger=none", "test=false"]
    sweep = tmp / "sweep"
    (sweep / "0" / "checkpoints").mkdir(parents=True)
    shutil.copy(bad["truncated.ckpt"], sweep / "0" / "checkpoints" / "last.ckpt")
    mismatch = tmp / "mismatch.csv"
    mismatch.write_text("mutant,measured\nM1A,0.5\nK4G,0.1\n")  # residue 4 is A, not K
    variants = [f"ckpt_path={ckpt}", f"wild_type={WILD_TYPE}"]
    invalid = tmp / "invalid.fasta"
    invalid.write_text(">a\nMK1V\n>b\nMK2V\n")
    return [
        # -- train: the data it reads and the checkpoint it resumes
        ("train", "empty", [*train, f"data.train=[{bad['empty.fasta']}]"], ["empty.fasta", "give"]),
        (
            "train",
            "truncated",
            [*train, f"data.train=[{bad['truncated.fasta.gz']}]"],
            ["truncated.fasta.gz"],
        ),
        ("train", "mismatched", [*train, f"ckpt_path={bad['plain.fasta']}"], ["ckpt_path"]),
        # no proteins left: every record invalid and skipped, or all shorter than min_length
        (
            "train",
            "all skipped",
            [*train, f"data.train=[{invalid}]", "data.on_invalid=skip"],
            ["data.train", "invalid character", "data.on_invalid=error"],
        ),
        (
            "train",
            "all too short",
            [*train, "data.min_length=5000", "data.max_length=64"],
            ["data.valid", "shorter than min_length", "data.min_length=5000"],
        ),
        # -- eval / embed / analyze / generate: the checkpoint they load, the FASTA they read
        ("eval", "empty", [f"ckpt_path={bad['empty']}"], []),
        (
            "eval",
            "truncated",
            [f"ckpt_path={ckpt}", f"fasta=[{bad['truncated.fasta.gz']}]"],
            ["truncated.fasta.gz"],
        ),
        ("eval", "mismatched", [f"ckpt_path={bad['plain.fasta']}"], []),
        ("embed", "empty", [f"ckpt_path={ckpt}", f"fasta=[{bad['empty.fasta']}]", out], []),
        ("embed", "truncated", [f"ckpt_path={bad['truncated.ckpt']}", out], []),
        ("embed", "mismatched", [f"ckpt_path={bad['plain.fasta']}", out], []),
        ("analyze", "empty", [f"ckpt_path={bad['empty']}"], []),
        ("analyze", "truncated", [f"ckpt_path={bad['truncated.ckpt']}"], []),
        (
            "analyze",
            "mismatched",
            [f"ckpt_path={ckpt}", f"fasta={bad['plain.fasta'].parent / 'nope.fa'}"],
            ["nope.fa"],
        ),
        ("generate", "empty", [f"ckpt_path={bad['empty']}"], []),
        ("generate", "truncated", [f"ckpt_path={bad['truncated.ckpt']}"], []),
        ("generate", "mismatched", [f"ckpt_path={ckpt}"], ["clm"]),
        # -- score: mutation CSVs and checkpoints
        ("score", "empty", [*variants, f"mutations={bad['empty.csv']}"], ["empty.csv"]),
        (
            "score",
            "header-only",
            [*variants, f"mutations={bad['header_only.csv']}"],
            ["header_only.csv"],
        ),
        (
            "score",
            "truncated",
            [f"ckpt_path={bad['truncated.ckpt']}", f"fasta=[{SAMPLE_VALID}]"],
            [],
        ),
        ("score", "mismatched", [*variants, f"mutations={mismatch}"], ["mismatch.csv", "line 3"]),
        # -- data: what it prepares
        (
            "data",
            "empty",
            ["prepare", str(bad["empty.fasta"]), "--out", str(tmp / "s1")],
            ["empty.fasta"],
        ),
        (
            "data",
            "truncated",
            ["prepare", str(bad["truncated.fasta.gz"]), "--out", str(tmp / "s2")],
            ["truncated.fasta.gz"],
        ),
        ("data", "mismatched", ["prepare", str(ckpt), "--out", str(tmp / "s3")], [ckpt.name]),
        # -- study: the sweep it reports on
        ("study", "empty", [f"sweep_dir={bad['empty_dir']}"], ["empty_dir", "sweep_dir", "give"]),
        (
            "study",
            "truncated",
            [f"sweep_dir={sweep}", f"study.splits.valid={SAMPLE_VALID}"],
            ["last.ckpt"],
        ),
        ("study", "mismatched", [f"sweep_dir={ckpt}"], ["sweep_dir"]),
    ]


KINDS = ["empty", "truncated", "mismatched"]


@pytest.mark.parametrize(
    "script", ["train", "eval", "embed", "score", "analyze", "data", "generate", "study"]
)
def test_bad_inputs_one_line_exit_2(
    script, tiny_mlm, bad_inputs, tmp_path, monkeypatch, capsys, one_thread
):
    cases = [c for c in _cases(tiny_mlm, bad_inputs, tmp_path) if c[0] == script]
    assert {kind for _, kind, _, _ in cases} >= set(KINDS)
    failures = []
    for _, kind, args, names in cases:
        code, err = run_script(f"protein-performer-{script}", args, tmp_path, monkeypatch, capsys)
        try:
            line = assert_one_line_error(code, err, f"protein-performer-{script}", *names)
        except AssertionError as exc:
            failures.append(f"{kind}: {exc}")
            continue
        print(f"{script} {kind}: {line}")
    assert not failures, "\n".join(failures)
