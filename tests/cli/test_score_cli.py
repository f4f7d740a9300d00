"""protein-performer-score: a tiny checkpoint end to end, Spearman printed, row-named errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from common import SAMPLE_VALID
from test_evaluate import make_checkpoint  # tests/cli is on sys.path (pytest rootdir import)

from protein_performer.cli.config import compose_train
from protein_performer.cli.score import score
from protein_performer.inference.mutations import parse_mutant
from protein_performer.inference.score import score_mutants
from protein_performer.runner import Engine, load_model

WT = "MKTAYIAKQRQISFVK"


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpt")
    return {o: make_checkpoint(d / f"{o}.ckpt", o, None) for o in ("mlm", "clm")}


def _csv(path: Path, mutants: list[str], measured: list[float] | None = None) -> Path:
    data = {"mutant": mutants}
    if measured is not None:
        data["measured"] = measured
    pd.DataFrame(data).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("objective", ["mlm", "clm"])
def test_scores_csv_and_spearman(tmp_path, ckpts, capsys, objective):
    muts = ["K2R", "A4G:K8R", "Y5W", "I6L"]
    csv = _csv(tmp_path / "dms.csv", muts, [0.1, -0.5, 0.3, 0.0])
    cfg = compose_train(
        [f"ckpt_path={ckpts[objective]}", f"wild_type={WT}", f"mutations={csv}", "device=cpu"],
        output_dir=tmp_path / "run",
        config_name="score",
    )
    result = score(cfg)
    out = pd.read_csv(result["csv"])
    loaded = load_model(ckpts[objective])
    engine = Engine(loaded.model, "cpu")
    want = score_mutants(engine, WT, [parse_mutant(m, WT) for m in muts], loaded.objective)
    np.testing.assert_allclose(out["score"], want, rtol=1e-6, atol=1e-9)
    assert f"Spearman rho vs measured: {result['spearman']:.4f}" in capsys.readouterr().out


def _cli(tmp_path, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from protein_performer.cli.score import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys,
        "argv",
        ["protein-performer-score", *args, "progress=false", f"hydra.run.dir={tmp_path / 'h'}"],
    )
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


def test_wild_type_mismatch_is_one_line_exit_2(tmp_path, ckpts, monkeypatch, capsys):
    _csv(tmp_path / "dms.csv", ["K2R", "G3A"])
    code, err = _cli(
        tmp_path,
        monkeypatch,
        capsys,
        f"ckpt_path={ckpts['mlm']}",
        f"wild_type={WT}",
        "mutations=dms.csv",
    )
    assert code == 2
    assert "dms.csv line 3: mutation 'G3A': the wild type has 'T' at position 3" in err
    assert "Traceback" not in err


# ------------------------------------------------------------------ per-protein mode (fasta=)


@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_per_protein_scores_on_the_sample(tmp_path, ckpts, capsys, objective):
    """Three sample proteins (all longer than the checkpoint's 64 tokens: windows) end to end;
    the CSV holds what the library computes, and a perplexity that is exp(-LL / n_tokens)."""
    from protein_performer.inference.likelihood import protein_likelihoods
    from protein_performer.runner import open_input

    cfg = compose_train(
        [
            f"ckpt_path={ckpts[objective]}",
            f"fasta=[{SAMPLE_VALID}]",
            "max_proteins=3",
            "device=cpu",
            "progress=false",
        ],
        output_dir=tmp_path / "run",
        config_name="score",
    )
    result = score(cfg)
    out = pd.read_csv(result["csv"])
    assert result["csv"] == str(tmp_path / "run" / "protein_scores.csv")
    assert list(out.columns) == [
        "file",
        "accession",
        "length",
        "method",
        "n_tokens",
        "log_likelihood",
        "nll_per_token",
        "perplexity",
    ]
    assert len(out) == 3 and (out["length"] + 2 > 64).all()
    assert set(out["method"]) == {"exact" if objective == "clm" else "pseudo"}
    assert (out["n_tokens"] == out["length"] + (objective == "clm")).all()
    np.testing.assert_allclose(
        out["perplexity"], np.exp(-out["log_likelihood"] / out["n_tokens"]), rtol=1e-12
    )
    loaded = load_model(ckpts[objective])
    want = [
        p.log_likelihood
        for p in protein_likelihoods(
            Engine(loaded.model, "cpu"),
            open_input(SAMPLE_VALID),
            objective=loaded.objective,
            max_length=64,
            max_proteins=3,
            progress=False,
        )
    ]
    np.testing.assert_allclose(out["log_likelihood"], want, rtol=1e-12)
    assert "scored 3 proteins" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (
            [f"fasta=[{SAMPLE_VALID}]", f"wild_type={WT}", "mutations=dms.csv"],
            "not both (got fasta= and wild_type= and mutations=)",
        ),
        ([], "nothing to score: give fasta= (per-protein scores) or wild_type= with mutations="),
        (["fasta=[missing.fasta.gz]"], "input not found: "),
        (["fasta=[bad.fasta]"], "bad.fasta, line 4, record 'P2': invalid character '1'"),
    ],
)
def test_per_protein_input_errors_are_one_line(tmp_path, ckpts, monkeypatch, capsys, args, message):
    (tmp_path / "bad.fasta").write_text(">P1\nMKV\n>P2\nMK1V\n")
    code, err = _cli(tmp_path, monkeypatch, capsys, f"ckpt_path={ckpts['clm']}", *args)
    assert code == 2 and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
