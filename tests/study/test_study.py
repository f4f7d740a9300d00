"""The study report: a sweep of two tiny trained models -> perplexity with bootstrap CIs,
BLOSUM beside the random-init control, the FAVOR+ error diagnostic, report.md."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from common import SAMPLE_DATA, SAMPLE_VALID, TINY_RUN

from protein_performer.cli.config import compose_train
from protein_performer.study.options import StudyOptions
from protein_performer.study.report import run_study
from protein_performer.study.runs import find_study_runs
from protein_performer.study.tables import bootstrap_perplexity


def test_bootstrap_interval_brackets_the_pooled_perplexity():
    rng = np.random.default_rng(0)
    n_tokens = rng.integers(50, 400, size=300)
    nll = n_tokens * rng.normal(2.8, 0.2, size=300)
    pooled = float(np.exp(nll.sum() / n_tokens.sum()))
    lo, hi = bootstrap_perplexity(nll, n_tokens, n=500, seed=1)
    assert lo < pooled < hi
    assert hi - lo < 0.1 * pooled  # 300 proteins: a narrow interval
    # fewer proteins, wider interval
    lo2, hi2 = bootstrap_perplexity(nll[:20], n_tokens[:20], n=500, seed=1)
    assert hi2 - lo2 > hi - lo


def test_study_options_need_a_split():
    with pytest.raises(ValueError, match="splits must name"):
        StudyOptions(splits={})


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    from protein_performer.cli.train import train

    root = tmp_path_factory.mktemp("sweep")
    for i, kind in enumerate(["exact", "favor_relu"]):
        run = root / str(i)
        overrides = [f"attention={kind}", "objective=clm"]
        cfg = compose_train(
            [
                *overrides,
                *TINY_RUN,
                *SAMPLE_DATA,
                "model.attention.nb_features=16",
                "model.n_layers=2",
                "trainer.max_steps=3",
            ],
            output_dir=run,
        )
        train(cfg)
        (run / ".hydra").mkdir(parents=True, exist_ok=True)
        (run / ".hydra" / "overrides.yaml").write_text(
            "".join(f"- {o}\n" for o in [*overrides, "trainer.max_steps=3"])
        )
    return root


def _mavenn_dir(root):
    """A 4-variant amyloid set (wild type MKTAYIAKQR: the consensus of the rows)."""
    import gzip

    rows = [
        (1, 0.5, "MKTAYIAKQG"),
        (1, -1.0, "AKTAYIAKQR"),
        (2, 0.2, "MRTAYLAKQR"),
        (1, 0, "MKTAWIAKQR"),
    ]
    text = "set,dist,y,x\n" + "".join(f"training,{d},{y},{x}\n" for d, y, x in rows)
    (root / "mavenn").mkdir(parents=True)
    (root / "mavenn" / "amyloid_data.csv.gz").write_bytes(gzip.compress(text.encode()))
    # 40 proteins labelled by a composition rule, for the Biology table's location probe
    rng = np.random.default_rng(0)
    (root / "aaanalysis").mkdir()
    lines = ["entry\tgene\tsequence\tlabel"]
    for n in range(40):
        seq = "".join(rng.choice(list("ACDEKLRST"), size=int(rng.integers(10, 40))))
        lines.append(f"E{n}\tg{n}\t{seq}\t{int(seq.count('K') > seq.count('E'))}")
    (root / "aaanalysis" / "SEQ_LOCATION.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.slow
def test_study_report(sweep, tmp_path):
    runs = find_study_runs(sweep)
    assert [r.label for r in runs] == ["attention=exact", "attention=favor_relu"]
    opts = StudyOptions(
        splits={"valid": str(SAMPLE_VALID)},
        max_proteins=20,
        n_bootstrap=200,
        analysis_proteins=20,
        n_permutations=50,
        favor_error_proteins=2,
        favor_error_features=(8, 32),
        progress=False,
        dms_data_dir=str(_mavenn_dir(tmp_path / "dms_data")),
        bio_data_dir=str(tmp_path / "dms_data"),
        bio_tasks=("location",),
    )
    study = run_study(sweep, opts)
    out = sweep / "study"
    table = pd.read_csv(out / "perplexity.csv")
    assert list(table["model"]) == ["attention=exact", "attention=favor_relu"]
    assert ((table.ppl_lo <= table.perplexity) & (table.perplexity <= table.ppl_hi)).all()
    assert np.allclose(table.ratio, table.perplexity / table.unigram)
    blosum = pd.read_csv(out / "blosum_vs_control.csv")
    assert set(blosum.columns) >= {"trained_pearson", "control_pearson", "beats_control"}
    assert blosum.trained_pearson.notna().all() and blosum.control_pearson.notna().all()
    # the control is a different model: its correlation differs from the trained one's
    assert (blosum.trained_pearson != blosum.control_pearson).all()
    for label in ("attention=exact", "attention=favor_relu"):
        trained = json.loads((out / "blosum" / label / "blosum_comparison.json").read_text())
        assert trained["control"]["vig"]["control_pearson"] is not None
        assert (out / "blosum" / label / "random_init" / "blosum_comparison.json").is_file()
        assert (out / "blosum" / label / "with_control.png").is_file()
    assert study["favor_error_model"] == "attention=exact"  # the exact model's q, k
    fe = pd.read_csv(out / "favor_error.csv")
    assert set(fe.nb_features) == {8, 32}
    for name in ("perplexity_ratio", "valid_curves", "blosum_vs_control", "favor_error"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert "random init" in report and "favor_error.png" in report and "95%" in report
    assert json.loads((out / "study.json").read_text())["runs"][0]["attention"] == "exact"
    dms = pd.read_csv(out / "dms.csv")
    assert set(dms.model) == {"attention=exact", "attention=favor_relu"}
    assert set(dms.predictor) == {"model", "blosum62", "unigram", "random_init"}
    assert "## Variant effects on deep mutational scans" in report and "Abeta42_Seuma2022" in report
    bio = pd.read_csv(out / "biology.csv")
    assert set(bio.checkpoint) == {"attention=exact", "attention=favor_relu"}
    assert set(bio.metric) == {"accuracy", "mcc", "auroc"} and (bio.task == "location").all()
    assert "## Biology: contacts and linear probes" in report


def test_study_cli_errors(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "protein_performer.cli.study", f"sweep_dir={tmp_path / 'nope'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 2 and "sweep_dir: no such directory" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "protein_performer.cli.study",
            f"sweep_dir={tmp_path}",
            "study.splits.valid=missing.fasta",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert r.returncode == 2 and "study.splits.valid: no such file" in r.stderr


@pytest.mark.slow
def test_cpu_study_experiment_end_to_end(tmp_path):
    """experiment=cpu_study is a sweep by itself (no -m) and writes the report at its end."""
    import os

    sweep = tmp_path / "sweep"
    small = [
        "study.max_proteins=10",
        "study.n_bootstrap=50",
        "study.analysis_proteins=10",
        "study.n_permutations=20",
        "study.favor_error_proteins=2",
        "study.favor_error_features=[8,16]",
        "study.progress=false",
        f"study.splits.valid={SAMPLE_VALID}",
        "~study.splits.test",
        "~study.splits.test_ood",
    ]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "protein_performer.train",
            "experiment=cpu_study",
            "attention=exact,favor_relu",
            *TINY_RUN,
            *SAMPLE_DATA,
            "model.n_layers=2",
            "model.attention.nb_features=16",
            *small,
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    assert r.returncode == 0, r.stderr[-4000:]
    table = pd.read_csv(sweep / "study" / "perplexity.csv")
    assert sorted(table["model"]) == ["attention=exact", "attention=favor_relu"]
    assert list(table["split"].unique()) == ["valid"]
    assert (sweep / "study" / "report.md").is_file() and (sweep / "comparison.csv").is_file()
    # the budget (19 min) did not bind: trainer.max_steps=2 ended both runs before any estimate
    training = pd.read_csv(sweep / "study" / "training.csv")
    assert list(training["steps"]) == [2, 2]
    assert list(training["steps_from"]) == ["trainer.max_steps"] * 2
    assert "## Training" in (sweep / "study" / "report.md").read_text()
