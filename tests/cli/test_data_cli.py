"""protein-performer-data: subcommands, exit codes, one-line errors."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from protein_performer.cli.data import main
from protein_performer.data.store import ProteinStore

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data/sample/valid.fasta.gz"


def _fa(tmp_path: Path, text: str, name: str = "a.fa") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_prepare_and_stats(tmp_path: Path, capsys) -> None:
    fa = _fa(tmp_path, ">a\nMKV\n>b\nMJ\n>c\nMKVLL\n>d\nMKV\n")
    rc = main(
        [
            "-q",
            "prepare",
            str(fa),
            "--out",
            str(tmp_path / "s"),
            "--on-invalid",
            "skip",
            "--dedupe",
            "--min-length",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "2 proteins" in out and "1 invalid character" in out
    assert "1 exact duplicates" in out and "line 4" in out
    assert len(ProteinStore(tmp_path / "s")) == 2
    rc = main(["stats", str(tmp_path / "s"), "--out", str(tmp_path / "st")])
    out = capsys.readouterr().out
    assert rc == 0 and "residue frequencies" in out
    assert json.loads((tmp_path / "st/stats.json").read_text())["proteins"] == 2
    assert (tmp_path / "st/stats.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("cmd", ["prepare", "stats", "split"])
def test_malformed_file_exit_2_one_line(tmp_path: Path, capsys, cmd: str) -> None:
    fa = _fa(tmp_path, ">a\nMKV\n>b\nMK1\n")
    argv = [cmd, str(fa)] + ([] if cmd == "stats" else ["--out", str(tmp_path / "o")])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert str(fa) in err and "line 4" in err and "'b'" in err and "'1'" in err


def test_errors_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["stats", str(tmp_path / "absent.fa")]) == 2
    assert "absent.fa" in capsys.readouterr().err
    (tmp_path / "d").mkdir()
    assert main(["stats", str(tmp_path / "d")]) == 2
    assert "protein-performer-data prepare" in capsys.readouterr().err
    gz = tmp_path / "t.fa.gz"
    gz.write_bytes(gzip.compress(b">a\n" + b"MKV" * 10000 + b"\n")[:-20])
    assert main(["prepare", str(gz), "--out", str(tmp_path / "s")]) == 2
    assert "truncated gzip" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["prepare", str(gz), "--out", str(tmp_path / "s"), "--min-length", "0"])
    assert e.value.code == 2


def test_split_cli(tmp_path: Path, capsys) -> None:
    fa = _fa(tmp_path, "".join(f">p{i}\nMKV{'L' * i}\n" for i in range(20)))
    assert (
        main(
            [
                "split",
                str(fa),
                "--out",
                str(tmp_path / "o"),
                "--fractions",
                "train=0.5,test=0.5",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    assert "train: 10 proteins" in capsys.readouterr().out
    tsv = tmp_path / "c.tsv"
    tsv.write_text("".join(f"p{i - i % 4}\tp{i}\n" for i in range(20)))
    assert (
        main(
            [
                "split",
                str(fa),
                "--out",
                str(tmp_path / "o2"),
                "--clusters",
                str(tsv),
                "--fractions",
                "train=0.5,test=0.5",
            ]
        )
        == 0
    )
    assert "clusters" in capsys.readouterr().out


def test_console_script_entry_point(tmp_path: Path) -> None:
    """`python -m protein_performer.cli.data` (what the console script calls) end to end."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "protein_performer.cli.data",
            "prepare",
            str(SAMPLE),
            "--out",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "500 proteins" in proc.stdout


def test_nucleotides_and_repeated_accessions_warned(tmp_path: Path, capsys) -> None:
    """DNA prepared as protein is kept but named on stderr (it passed silently), and so are
    repeated accessions; stats counts both."""
    fa = _fa(tmp_path, ">d1\n" + "ACGT" * 8 + "\n>d1\nMKVLAAGIWT\n")
    assert main(["prepare", str(fa), "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert "1 of 2 proteins look like nucleotides" in err and "'d1'" in err
    assert "1 records repeat an earlier record's accession" in err
    assert main(["stats", str(fa)]) == 0
    out = capsys.readouterr().out
    assert "nucleotide-like proteins (DNA/RNA?)" in out and "repeated accessions" in out
