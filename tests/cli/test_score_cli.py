"""protein-performer-score: a tiny checkpoint end to end, Spearman printed, row-named errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from protein_performer.cli.config import compose_train
from protein_performer.cli.score import score
from protein_performer.inference.mutations import parse_mutant
from protein_performer.inference.score import score_mutants
from protein_performer.model.checkpoint import load_lm
from test_evaluate import make_checkpoint  # tests/cli is on sys.path (pytest rootdir import)

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
    cfg = compose_train([f"ckpt_path={ckpts[objective]}", f"wild_type={WT}", f"mutations={csv}",
                         "device=cpu"], output_dir=tmp_path / "run", config_name="score")
    result = score(cfg)
    out = pd.read_csv(result["csv"])
    loaded = load_lm(ckpts[objective])
    want = score_mutants(loaded.model, WT, [parse_mutant(m, WT) for m in muts], objective)
    np.testing.assert_allclose(out["score"], want, rtol=1e-6, atol=1e-9)
    assert f"Spearman rho vs measured: {result['spearman']:.4f}" in capsys.readouterr().out


def test_wild_type_mismatch_is_one_line_exit_2(tmp_path, ckpts, monkeypatch, capsys):
    from protein_performer.cli.score import main

    _csv(tmp_path / "dms.csv", ["K2R", "G3A"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["protein-performer-score", f"ckpt_path={ckpts['mlm']}",
                                      f"wild_type={WT}", "mutations=dms.csv",
                                      f"hydra.run.dir={tmp_path / 'h'}"])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "dms.csv line 3: mutation 'G3A': the wild type has 'T' at position 3" in err
    assert "Traceback" not in err
