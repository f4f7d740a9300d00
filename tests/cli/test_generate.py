"""protein-performer-generate end to end on tiny trained checkpoints."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_evaluate import make_checkpoint  # tests/cli is on sys.path (pytest rootdir import)

from protein_performer.cli.config import compose_train
from protein_performer.cli.generate import run_generate
from protein_performer.data.fasta.reading import read_fasta


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpt")
    return {
        "clm": make_checkpoint(d / "clm.ckpt", "clm", None),
        "mlm": make_checkpoint(d / "mlm.ckpt", "mlm", None),
    }


def _cfg(tmp_path: Path, *overrides: str):
    return compose_train(
        ["progress=false", "device=cpu", *overrides],
        output_dir=tmp_path / "run",
        config_name="generate",
    )


def test_writes_fasta_with_settings(tmp_path: Path, checkpoints) -> None:
    path = run_generate(
        _cfg(
            tmp_path,
            f"ckpt_path={checkpoints['clm']}",
            "n=5",
            "prompt=MK",
            "max_new_tokens=12",
            "top_p=0.9",
            "seed=7",
        )
    )
    records = list(read_fasta(path))
    assert len(records) == 5
    again = run_generate(
        _cfg(
            tmp_path,
            f"ckpt_path={checkpoints['clm']}",
            "n=5",
            "prompt=MK",
            "max_new_tokens=12",
            "top_p=0.9",
            "seed=7",
            f"output={tmp_path / 'b.fasta'}",
        )
    )
    assert path.read_text() == again.read_text()
    text = path.read_text()
    assert "prompt=MK" in text and "top_p=0.9" in text and "seed=7" in text


def _run_cli(cwd: Path, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from protein_performer.cli.generate import main

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "protein-performer-generate",
            *args,
            "progress=false",
            f"hydra.run.dir={cwd / 'hydra_run'}",
        ],
    )
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


def test_masked_checkpoint_is_one_line_error(
    tmp_path: Path, monkeypatch, capsys, checkpoints
) -> None:
    code, err = _run_cli(tmp_path, monkeypatch, capsys, f"ckpt_path={checkpoints['mlm']}")
    assert code == 2 and "objective=clm" in err and len(err.strip().splitlines()) == 1


def test_bad_prompt_and_missing_checkpoint(
    tmp_path: Path, monkeypatch, capsys, checkpoints
) -> None:
    code, err = _run_cli(
        tmp_path, monkeypatch, capsys, f"ckpt_path={checkpoints['clm']}", "prompt=MK7"
    )
    assert code == 2 and "prompt" in err
    code, err = _run_cli(tmp_path, monkeypatch, capsys, "ckpt_path=nothere.ckpt")
    assert code == 2 and "nothere.ckpt" in err
