"""The paper table's layout: models x (split, accuracy|perplexity), baseline row first."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from protein_performer.evaluation.paper_table import (
    BASELINE_ROW,
    default_label,
    paper_table,
    write_paper_table,
)


def _results():
    return {
        "exact_uni": {
            "test": {"accuracy": 0.30, "perplexity": 11.3},
            "ood": {"accuracy": 0.19, "perplexity": 16.5},
        },
        "favor_relu_bid": {"test": {"accuracy": 0.36, "perplexity": 9.6}},
    }


def test_layout_and_values() -> None:
    baseline = {
        "test": {"accuracy": 0.0992, "perplexity": 17.8},
        "ood": {"accuracy": 0.0907, "perplexity": 17.93},
    }
    t = paper_table(_results(), baseline)
    assert list(t.index) == [BASELINE_ROW, "exact_uni", "favor_relu_bid"]
    assert list(t.columns) == [
        ("test", "accuracy"),
        ("test", "perplexity"),
        ("ood", "accuracy"),
        ("ood", "perplexity"),
    ]
    assert t.loc["exact_uni", ("test", "accuracy")] == pytest.approx(30.0)  # percent
    assert t.loc[BASELINE_ROW, ("ood", "perplexity")] == pytest.approx(17.93)
    assert math.isnan(t.loc["favor_relu_bid", ("ood", "perplexity")])


def test_write_markdown_and_csv_round_trip(tmp_path) -> None:
    t = paper_table(_results())
    paths = write_paper_table(t, tmp_path)
    md = paths["markdown"].read_text()
    assert "test accuracy (%)" in md and "ood perplexity" in md and "exact_uni" in md
    back = pd.read_csv(paths["csv"], header=[0, 1], index_col=0)
    assert back.loc["favor_relu_bid", ("test", "perplexity")] == pytest.approx(9.6)


def test_default_label() -> None:
    assert default_label("favor_relu", causal=True) == "favor_relu_uni"
    assert default_label("exact", causal=False) == "exact_bid"


def _load_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "paper_table.py"
    spec = importlib.util.spec_from_file_location("paper_table_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_evaluates_checkpoints_into_the_paper_layout(tmp_path) -> None:
    import gzip
    import json

    from evaluation_toys import save_tiny_checkpoint

    ck = tmp_path / "ck"
    ck.mkdir()
    freqs = [0.0] * 6 + [1.0 / 25] * 25
    uni = save_tiny_checkpoint(ck / "a.ckpt", kind="exact", objective="clm", frequencies=freqs)
    bid = save_tiny_checkpoint(ck / "b.ckpt", kind="favor_relu", objective="mlm")
    splits = {}
    for name, seqs in (
        ("test", ["MKVLAAGIVG", "ACDEFGHIKLMNPQRSTVWY" * 3]),
        ("ood", ["MSTNPK" * 5]),
    ):
        path = tmp_path / f"{name}.fasta.gz"
        with gzip.open(path, "wt") as f:
            f.writelines(f">{name}{i}\n{s}\n" for i, s in enumerate(seqs))
        splits[name] = path
    out = tmp_path / "table"
    script = _load_script()
    rc = script.main(
        [
            "--ckpt",
            f"my_uni={uni}",
            "--ckpt",
            str(bid),
            "--split",
            f"test={splits['test']}",
            "--split",
            f"ood={splits['ood']}",
            "--out",
            str(out),
            "--n-maskings",
            "2",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    table = pd.read_csv(out / "paper_table.csv", header=[0, 1], index_col=0)
    assert list(table.index) == [BASELINE_ROW, "my_uni", "favor_relu_bid"]
    assert list(table.columns) == [
        ("test", "accuracy"),
        ("test", "perplexity"),
        ("ood", "accuracy"),
        ("ood", "perplexity"),
    ]
    # The baseline: uniform frequencies over 25 residues -> perplexity 25 on any residues.
    assert table.loc[BASELINE_ROW, ("test", "perplexity")] == pytest.approx(25.0)
    metrics = json.loads((out / "paper_metrics.json").read_text())
    assert metrics["models"]["my_uni"]["test"]["objective"] == "clm"
    assert metrics["models"]["favor_relu_bid"]["ood"]["n_maskings"] == 2
    ppl = metrics["models"]["favor_relu_bid"]["test"]["perplexity"]
    assert table.loc["favor_relu_bid", ("test", "perplexity")] == pytest.approx(ppl, rel=1e-5)
    assert "test accuracy (%)" in (out / "paper_table.md").read_text()
