"""The study's Biology table: headline rows from task summaries, each beside its null."""

from __future__ import annotations

import pandas as pd
import pytest

from protein_performer.study.biology import biology_section, headline
from protein_performer.study.options import StudyOptions


def _contacts() -> pd.DataFrame:
    rows = []
    for predictor, value in [
        ("contact_density", 0.03),
        ("model", 0.25),
        ("best_single_head", 0.2),
        ("random_init", 0.04),
    ]:
        for rng in ("long", "medium"):
            for k in ("L/5", "L/2", "L"):
                v = value if (rng, k) == ("long", "L/5") else 0.5
                rows.append(("m1", predictor, rng, k, v, v - 0.01, v + 0.01, 30))
    cols = ["model", "predictor", "range", "k", "precision", "ci_low", "ci_high", "n_chains"]
    return pd.DataFrame(rows, columns=cols)


def _probe(baseline: str) -> pd.DataFrame:
    rows = [
        ("m1", p, m, v, v - 0.1, v + 0.1)
        for p, v in [("model", 0.8), ("random_init", 0.6), (baseline, 0.7), ("majority_class", 0.5)]
        for m in ("accuracy", "balanced_accuracy", "mcc", "auroc")
    ]
    return pd.DataFrame(
        rows, columns=["model", "predictor", "metric", "value", "ci_low", "ci_high"]
    )


def test_headline_keeps_each_headline_metric_beside_its_null():
    table = headline({"contacts": _contacts(), "ss": _probe("onehot_window"),
                      "location": _probe("aa_composition")})  # fmt: skip
    assert table[["task", "metric"]].values.tolist() == [
        ["contacts", "P@L/5 long"], ["ss", "accuracy"],
        ["location", "accuracy"], ["location", "mcc"], ["location", "auroc"],
    ]  # fmt: skip
    contacts = table.iloc[0]
    assert contacts["model"] == "0.250 [0.240, 0.260]"
    assert contacts["null"] == "0.030 [0.020, 0.040] (contact_density)"
    assert contacts["baseline"].endswith("(best_single_head)")
    assert table.iloc[2]["baseline"] == "0.700 [0.600, 0.800] (aa_composition)"
    lines = biology_section(table, "biology/contacts/m1/contact_maps.png")
    assert lines[0] == "## Biology: contacts and linear probes"
    assert "![contact maps](biology/contacts/m1/contact_maps.png)" in lines
    assert biology_section(None) == []


def test_unknown_bio_task_is_refused():
    with pytest.raises(ValueError, match="unknown task 'folding'"):
        StudyOptions(splits={"valid": "x"}, bio_tasks=("contacts", "folding"))
