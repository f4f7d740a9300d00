"""The sweep summary: comparison table (CSV + markdown) and perplexity curves from run dirs,
fake ones and those of a real 2-run multirun."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from common import TINY_RUN

from protein_performer.training.sweep_summary import summarize

REPO = Path(__file__).resolve().parents[2]


def _fake_run(sweep: Path, num: int, overrides: list[str], ppl: list[float]) -> None:
    run = sweep / str(num)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    rows = []
    for i, p in enumerate(ppl):
        step = 100 * (i + 1)
        rows.append({"step": step - 1, "train/loss": 3.0 - 0.1 * i})
        rows.append({"step": step - 1, "valid/perplexity": p, "valid/loss": math.log(p)})
    (run / "csv").mkdir()
    pd.DataFrame(rows).to_csv(run / "csv" / "metrics.csv", index=False)
    (run / "metrics.json").write_text(
        json.dumps({"valid/perplexity": ppl[-1], "test/perplexity": ppl[-1] + 1})
    )


def test_summary_from_fake_runs(tmp_path):
    _fake_run(
        tmp_path,
        0,
        ["attention=exact", "objective=mlm", "trainer.max_steps=300"],
        [15.0, 12.0, 11.0],
    )
    _fake_run(
        tmp_path,
        1,
        ["attention=favor_relu", "objective=mlm", "trainer.max_steps=300"],
        [16.0, 13.0, 10.5],
    )
    (tmp_path / "2" / ".hydra").mkdir(parents=True)  # a job that crashed before logging
    (tmp_path / "2" / ".hydra" / "overrides.yaml").write_text(
        "- attention=favor_softmax\n- objective=mlm\n- trainer.max_steps=300\n"
    )
    table = summarize(tmp_path)
    assert len(table) == 3
    # sorted by final validation perplexity; constant overrides are not columns
    assert list(table["attention"]) == ["favor_relu", "exact", "favor_softmax"]
    assert "trainer.max_steps" not in table and "objective" not in table
    best = table.set_index("attention")
    assert best.loc["exact", "valid/perplexity (best)"] == 11.0
    assert best.loc["favor_relu", "test/perplexity"] == 11.5
    assert best.loc["favor_softmax", "status"] == "no metrics"
    assert best.loc["exact", "steps"] == 299
    on_disk = pd.read_csv(tmp_path / "comparison.csv")
    assert len(on_disk) == 3
    md = (tmp_path / "comparison.md").read_text()
    assert "attention=favor_relu" in md and "|" in md
    png = tmp_path / "valid_perplexity.png"
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"


def test_summary_without_runs_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no runs found"):
        summarize(tmp_path)


TINY = [*TINY_RUN, "trainer.val_check_interval=1"]


@pytest.mark.slow
def test_real_multirun_writes_comparison(tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "protein_performer.train",
            "-m",
            "attention=exact,favor_relu",
            "model.attention.nb_features=16",
            *TINY,
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    table = pd.read_csv(sweep / "comparison.csv")
    assert sorted(table["attention"]) == ["exact", "favor_relu"]
    assert table["valid/perplexity (final)"].notna().all()
    assert (sweep / "comparison.md").is_file() and (sweep / "valid_perplexity.png").is_file()
    assert not (tmp_path / "outputs").exists()
