"""protein-performer-analyze: outputs in the run directory, sweep comparison, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from common import SAMPLE_DATA, TINY_RUN

from protein_performer.cli.config import compose_train

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "analysis"))


def compose(overrides, tmp_path):
    return compose_train(list(overrides), output_dir=tmp_path, config_name="analyze")


def test_config_composes(tmp_path):
    cfg = compose([], tmp_path)
    from protein_performer.cli.analyze import analysis_options

    opts = analysis_options(cfg)
    assert opts.n_proteins == 800 and opts.threshold == 0.1 and opts.reference == "BLOSUM62"
    assert cfg.output_dir == str(tmp_path.resolve())


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    from protein_performer.cli.analyze import analyze
    from protein_performer.runner import CheckpointError, InputError

    with pytest.raises(CheckpointError, match="checkpoint not found: .*nope.ckpt"):
        analyze(compose([f"ckpt_path={tmp_path / 'nope.ckpt'}"], tmp_path))
    with pytest.raises(InputError, match="ckpt_path is required"):
        analyze(compose([], tmp_path))


def test_unknown_matrix_is_a_clear_error(tmp_path):
    from protein_performer.analysis.substitution import UnknownMatrixError
    from protein_performer.cli.analyze import analyze

    with pytest.raises(UnknownMatrixError, match="BLOSUM99.*BLOSUM62"):
        analyze(compose(["reference=BLOSUM99"], tmp_path))


def test_command_line_error_exit_status(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "protein_performer.cli.analyze",
            "ckpt_path=missing.ckpt",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "protein-performer-analyze: error: checkpoint not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def _toy_run(out_dir: Path, seed: int) -> Path:
    from analysis_toys import ToyAttentionModel

    from protein_performer.analysis import (
        AnalysisOptions,
        aggregate_attention,
        summarise,
        write_outputs,
    )
    from protein_performer.data.source import InMemoryProteins

    rng = np.random.default_rng(seed)
    lengths = rng.integers(10, 40, size=6)
    seqs = rng.integers(6, 26, size=int(lengths.sum())).astype(np.uint8)
    src = InMemoryProteins(
        seqs, np.concatenate([[0], np.cumsum(lengths)]), [str(i) for i in range(6)]
    )
    opts = AnalysisOptions(
        n_proteins=6,
        min_total_weight=0.0,
        n_permutations=10,
        device="cpu",
        progress=False,
        matrices=["BLOSUM62"],
    )
    agg, counts = aggregate_attention(ToyAttentionModel(seed=seed), src, opts)
    write_outputs(summarise(agg, opts, counts), out_dir)
    return out_dir


def test_sweep_comparison_from_earlier_runs(tmp_path):
    from protein_performer.cli.analyze import analyze

    a, b = _toy_run(tmp_path / "a", 0), _toy_run(tmp_path / "b", 1)
    m = tmp_path / "metrics.json"  # protein-performer-eval layout
    m.write_text(json.dumps({"files": {"valid.fasta.gz": {"perplexity": 17.5, "accuracy": 0.1}}}))
    out = tmp_path / "cmp"
    result = analyze(
        compose([f"runs=[{a},{b}]", "labels=[exact,favor]", f"metrics=[{m},null]"], out)
    )
    table = pd.read_csv(out / "comparison.csv")
    assert list(table["label"]) == ["exact", "favor"]
    assert table["perplexity"].iloc[0] == 17.5 and np.isnan(table["perplexity"].iloc[1])
    expected = json.loads((a / "blosum_comparison.json").read_text())["pearson"]
    assert table["pearson"].iloc[0] == pytest.approx(expected)
    for name in ("comparison.md", "comparison.png", "comparison.pdf"):
        assert (out / name).stat().st_size > 0
    assert result["files"]["comparison_csv"] == str(out / "comparison.csv")
    with pytest.raises(ValueError, match="labels has 1 entries"):
        analyze(compose([f"runs=[{a},{b}]", "labels=[x]"], out))


# ---------------------------------------------------------------------------------------------
# End to end on a checkpoint made by the real training entry point.

TINY_TRAIN = [*TINY_RUN, "model.n_layers=2", "trainer.limit_val_batches=1", *SAMPLE_DATA]


def tiny_checkpoint(tmp_path: Path, extra=()) -> Path:
    """Two training steps of a tiny model through protein-performer-train's train()."""
    from protein_performer.cli.train import train

    train(compose_train([*TINY_TRAIN, *extra], output_dir=tmp_path))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("train"))


FAST = [
    "n_proteins=16",
    "n_permutations=20",
    "min_total_weight=0",
    "threshold=0.0",
    "progress=false",
    "device=cpu",
]


def test_cli_on_a_tiny_checkpoint(ckpt, tmp_path):
    from protein_performer.cli.analyze import analyze

    out = tmp_path / "run"
    result = analyze(compose([f"ckpt_path={ckpt}", *FAST], out))
    assert result["n_proteins"] == 16 and result["heads"]["total"] == 4
    assert result["checkpoint"] == str(ckpt)
    assert result["heads"]["kept"] == 4 and -1 <= result["pearson"] <= 1
    assert not result["warnings"]
    for name in (
        "blosum_comparison.json",
        "per_head.csv",
        "per_layer.csv",
        "vig_similarity.csv",
        "direct_ratio.csv",
        "BLOSUM62.csv",
        "heatmaps.png",
        "heatmaps.pdf",
        "scatter.png",
        "layer_head_grid.png",
        "attention_map.png",
    ):
        assert (out / name).stat().st_size > 0, name
    per_head = pd.read_csv(out / "per_head.csv")
    assert len(per_head) == 4
    # the null beside it: the same config at random init, through the same analysis
    control = result["control"]
    assert control["kind"] == "random_init"
    assert -1 <= control["vig"]["control_pearson"] <= 1
    assert control["vig"]["trained_pearson"] == pytest.approx(result["pearson"])
    assert control["vig"]["control_pearson"] != pytest.approx(result["pearson"])
    assert isinstance(control["vig"]["beats_control"], bool)
    assert (out / "random_init" / "blosum_comparison.json").is_file()
    assert (out / "with_control.png").read_bytes()[:4] == b"\x89PNG"


def test_favor_error_on_the_models_own_qk(ckpt, tmp_path, capsys):
    from protein_performer.cli.analyze import analyze

    out = tmp_path / "run"
    analyze(
        compose(
            [
                f"ckpt_path={ckpt}",
                *FAST,
                "figures=false",
                "control=false",
                "favor_error=true",
                "favor_error_proteins=2",
                "favor_error_features=[8,64]",
            ],
            out,
        )
    )
    table = pd.read_csv(out / "favor_error.csv")
    assert set(table["nb_features"]) == {8, 64} and set(table["layer"]) == {0, 1}
    assert (out / "favor_error.png").is_file() and not (out / "random_init").exists()
    assert "m=8" in capsys.readouterr().out


def test_sweep_over_checkpoints(ckpt, tmp_path):
    from protein_performer.cli.analyze import analyze

    out = tmp_path / "sweep"
    analyze(compose([f"ckpts=[{ckpt},{ckpt}]", *FAST, "figures=false"], out))
    table = pd.read_csv(out / "comparison.csv")
    assert len(table) == 2 and table["label"].nunique() == 2
    # the training run's metrics.json beside the checkpoint gives the perplexity column
    assert table["perplexity"].notna().all()
    assert table["pearson"].iloc[0] == pytest.approx(table["pearson"].iloc[1])
    for name in ("comparison.md", "comparison.png", "comparison.pdf"):
        assert (out / name).stat().st_size > 0


def test_default_threshold_on_a_barely_trained_model_warns(ckpt, tmp_path, capsys):
    """Two training steps leave attention diffuse: no weight reaches 0.1, every head is
    excluded; the run still writes its files (statistics null) and says why."""
    from protein_performer.cli.analyze import analyze

    out = tmp_path / "run"
    result = analyze(
        compose(
            [
                f"ckpt_path={ckpt}",
                "n_proteins=8",
                "n_permutations=5",
                "progress=false",
                "device=cpu",
                "figures=false",
            ],
            out,
        )
    )
    if result["heads"]["kept"] >= 3:
        raise AssertionError("precondition: this tiny model should attend diffusely")
    assert result["pearson"] is None and result["warnings"]
    assert "lower threshold" in capsys.readouterr().out
    assert json.loads((out / "blosum_comparison.json").read_text())["pearson"] is None


def test_compare_word_is_accepted(monkeypatch):
    import protein_performer.cli.analyze as cli

    seen = {}
    monkeypatch.setattr(cli, "_hydra_main", lambda: seen.setdefault("argv", list(sys.argv)))
    monkeypatch.setattr(sys, "argv", ["protein-performer-analyze", "compare", "runs=[a,b]"])
    cli.main()
    assert seen["argv"] == ["protein-performer-analyze", "runs=[a,b]"]
