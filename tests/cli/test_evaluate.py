"""protein-performer-eval: a tiny checkpoint end to end, and clear one-line input errors."""

from __future__ import annotations

import csv
import gzip
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from common import make_checkpoint  # noqa: F401  (also imported from here by tests/cli)

from protein_performer.cli.config import compose_train
from protein_performer.cli.evaluate import evaluate
from protein_performer.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SAMPLE_VALID = REPO / "data/sample/valid.fasta.gz"


def _cfg(tmp_path: Path, *overrides: str):
    return compose_train(
        ["progress=false", "device=cpu", *overrides],
        output_dir=tmp_path / "run",
        config_name="eval",
    )


def _run_cli(cwd: Path, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the console entry point in-process (Hydra and all); (exit status, stderr)."""
    from protein_performer.cli.evaluate import main

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(
        sys,
        "argv",
        ["protein-performer-eval", *args, "progress=false", f"hydra.run.dir={cwd / 'hydra_run'}"],
    )
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpt")
    freqs = [0.0] * 6 + [1.0 / 25] * 25  # normalised residue frequencies, as training stores
    return {
        "clm": make_checkpoint(d / "clm.ckpt", "clm", freqs),
        "mlm": make_checkpoint(d / "mlm.ckpt", "mlm", None),
    }


def _write_fasta(path: Path, records: list[tuple[str, str]]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as f:
        for acc, seq in records:
            f.write(f">{acc} test\n{seq}\n")
    return path


RECORDS = [
    ("P1", "MKVLAAGIVG"),
    ("P2", "MSTNPKPQRKTKRNTNRRPQDVKFPGG" * 4),
    ("P3", "ACDEFGHIKLMNPQRSTVWY"),
]


def test_clm_checkpoint_end_to_end(tmp_path: Path, checkpoints, capsys) -> None:
    fasta = _write_fasta(tmp_path / "test.fasta.gz", RECORDS)
    ood = _write_fasta(tmp_path / "ood.fasta", RECORDS[:2])
    out = evaluate(_cfg(tmp_path, f"ckpt_path={checkpoints['clm']}", f"fasta=[{fasta},{ood}]"))
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(out))
    assert metrics["objective"] == "clm" and list(metrics["files"]) == [
        "test.fasta.gz",
        "ood.fasta",
    ]
    m = metrics["files"]["test.fasta.gz"]
    n_res = sum(len(s) for _, s in RECORDS)
    assert m["n_sequences"] == 3 and m["n_tokens"] == n_res + 3  # residues + <eos>
    assert m["n_windowed_sequences"] == 1 and (m["window"], m["stride"]) == (64, 32)
    assert m["perplexity"] == pytest.approx(math.exp(m["nll_per_token"]))
    # uniform residue frequencies: the unigram baseline is close to 26 (25 residues + <eos>)
    assert 20 < m["unigram_perplexity"] < 30
    assert "checkpoint" in metrics["unigram_source"]
    rows = list(csv.DictReader(open(m["per_protein_csv"])))
    assert [r["accession"] for r in rows] == ["P1", "P2", "P3"]
    assert [int(r["length"]) for r in rows] == [len(s) for _, s in RECORDS]
    printed = capsys.readouterr().out
    assert "| test.fasta.gz" in printed and "unigram_perplexity" in printed


def test_mlm_checkpoint_defaults_to_embedded_valid(tmp_path: Path, checkpoints) -> None:
    out = evaluate(
        _cfg(
            tmp_path,
            f"ckpt_path={checkpoints['mlm']}",
            "max_proteins=20",
            "n_maskings=2",
            "per_protein=false",
        )
    )
    ((label, m),) = out["files"].items()
    assert label == "valid.fasta.gz" and m["path"] == str(SAMPLE_VALID)
    assert m["n_sequences"] == 20 and m["n_maskings"] == 2 and "perplexity_std" in m
    assert "per_protein_csv" not in m
    # the checkpoint stores no frequencies: the embedded train sample stands in, and says so
    assert "embedded sample" in out["unigram_source"]
    assert 15 < m["unigram_perplexity"] < 22


def test_missing_checkpoint_is_one_line_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    code, stderr = _run_cli(tmp_path, monkeypatch, capsys, "ckpt_path=nothere.ckpt")
    assert code == 2
    err = stderr.strip().splitlines()
    assert len(err) == 1 and "checkpoint not found" in err[0] and "nothere.ckpt" in err[0]
    assert "Traceback" not in stderr


def test_unknown_residues_is_one_line_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    _write_fasta(tmp_path / "bad.fasta", [("P1", "MKVL"), ("P2", "MK#VL")])
    (tmp_path / "fake.ckpt").write_bytes(b"")  # inputs are read before the model
    code, stderr = _run_cli(
        tmp_path, monkeypatch, capsys, "ckpt_path=fake.ckpt", "fasta=[bad.fasta]"
    )
    assert code == 2, stderr
    err = stderr.strip().splitlines()
    assert len(err) == 1 and "bad.fasta" in err[0] and "#" in err[0]
    assert "Traceback" not in stderr


def test_console_script_exit_status(tmp_path: Path) -> None:
    # The real process: one line on stderr, exit status 2.
    res = subprocess.run(
        [sys.executable, "-m", "protein_performer.cli.evaluate", "ckpt_path=nothere.ckpt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "checkpoint not found" in res.stderr


def test_bad_inputs_raise_clear_errors(tmp_path: Path) -> None:

    with pytest.raises(ValueError, match="ckpt_path is required"):
        evaluate(_cfg(tmp_path))
    fake = tmp_path / "fake.ckpt"
    fake.write_bytes(b"")
    with pytest.raises(InputError, match="input not found: .*absent.fasta"):
        evaluate(_cfg(tmp_path, f"ckpt_path={fake}", f"fasta=[{tmp_path / 'absent.fasta'}]"))
    empty = tmp_path / "empty.fasta"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        evaluate(_cfg(tmp_path, f"ckpt_path={fake}", f"fasta=[{empty}]"))
    good = _write_fasta(tmp_path / "good.fasta", RECORDS[:1])
    with pytest.raises(ValueError, match="not a readable torch checkpoint|not a protein-performer"):
        evaluate(_cfg(tmp_path, f"ckpt_path={fake}", f"fasta=[{good}]"))
