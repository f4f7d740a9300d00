"""Task dms: variant scores through the engine against float64 references, windows around
mutations in a protein 3x max_length, and the benchmark command end to end."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from protein_performer.benchmarks.dms_data import Assay
from protein_performer.benchmarks.tasks import model_labels
from protein_performer.benchmarks.variant_scoring import plan_segments, score_assay, window_span
from protein_performer.cli.config import compose_train
from protein_performer.data.alphabet import ALPHABET
from protein_performer.inference.mutations import parse_mutant
from protein_performer.inference.score import score_mutants
from protein_performer.runner import Engine, load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from test_evaluate import make_checkpoint  # noqa: E402

WT = "MKTAYIAKQRQISFVKSHFSRQ"


def _assay(wild_type: str, mutants: list[str], first_position: int = 1) -> Assay:
    parsed = [parse_mutant(m, wild_type, offset=first_position) for m in mutants]
    k = max(len(p) for p in parsed)
    sites = np.full((len(parsed), k), -1, dtype=np.int64)
    alts = np.full(sites.shape, "", dtype=object)
    for r, muts in enumerate(parsed):
        for j, m in enumerate(muts):
            sites[r, j], alts[r, j] = m.index, m.mt
    return Assay("toy", wild_type, sites, alts, np.arange(len(parsed), dtype=float), first_position)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ckpt")
    return {o: make_checkpoint(d / f"{o}.ckpt", o, None) for o in ("mlm", "clm")}


@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_engine_scores_equal_the_float64_reference(ckpts, objective) -> None:
    mutants = ["K2R", "A4G:K8R", "Y5W", "I6L", "M1A:Q22E", "S13P:F14W:V15A"]
    loaded = load_model(ckpts[objective])
    assay = _assay(WT, mutants)
    # budget 60: several batches of a few rows each, rows of every batch size
    got, windows = score_assay(Engine(loaded.model, "cpu"), objective, assay, 64, budget=60)
    reference = Engine(loaded.model, "cpu")  # the plain scorer (inference/score.py)
    want = score_mutants(reference, WT, [parse_mutant(m, WT) for m in mutants], loaded.objective)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert windows.tolist() == ([1] * 6 if objective == "clm" else [1, 2, 1, 1, 2, 3])


class LocalToy(nn.Module):
    """float64 logits at t from tokens t-1, t (causal) or t-1, t, t+1 (bidirectional) only:
    its scores do not depend on anything farther away, so windows must not change them."""

    def __init__(self, causal: bool) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        v = len(ALPHABET)
        self.causal = causal
        self.prev, self.here, self.next = (
            torch.randn(v, v, generator=g, dtype=torch.float64) for _ in range(3)
        )

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        prev = torch.nn.functional.pad(tokens, (1, 0), value=ALPHABET.pad_idx)[:, :-1]
        out = self.prev[prev] + self.here[tokens]
        if not self.causal:
            nxt = torch.nn.functional.pad(tokens, (0, 1), value=ALPHABET.pad_idx)[:, 1:]
            out = out + self.next[nxt]
        return out


@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_windows_in_a_protein_three_times_max_length(objective) -> None:
    rng = np.random.default_rng(0)
    max_length = 24
    wild_type = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 3 * max_length))
    wt = wild_type
    mutants = [
        f"{wt[0]}1A" if wt[0] != "A" else "A1C",  # at the start: the window holds <cls>
        f"{wt[35]}36W" if wt[35] != "W" else "W36Y",  # the middle
        f"{wt[71]}72P" if wt[71] != "P" else "P72G",  # the last residue: the window holds <eos>
        # a double closer than a window, and one farther apart (split into two windows)
        ":".join(f"{wt[i]}{i + 1}{'G' if wt[i] != 'G' else 'A'}" for i in (30, 40)),
        ":".join(f"{wt[i]}{i + 1}{'G' if wt[i] != 'G' else 'A'}" for i in (5, 60)),
    ]
    assay = _assay(wild_type, mutants)
    engine = Engine(LocalToy(objective == "clm"), "cpu")
    whole, one = score_assay(engine, objective, assay, 10 * max_length)
    windowed, used = score_assay(engine, objective, assay, max_length, budget=100)
    assert one.tolist() == ([1] * 5 if objective == "clm" else [1, 1, 1, 2, 2])
    assert used.tolist() == ([1, 1, 1, 1, 2] if objective == "clm" else [1, 1, 1, 2, 2])
    np.testing.assert_allclose(windowed, whole, rtol=0, atol=1e-10)
    assert np.abs(whole).min() > 1e-3  # the scores are not trivially zero


def test_window_span_and_plan() -> None:
    assert window_span(5, 10, 12) == (0, 10)  # fits with <cls>, <eos>
    assert window_span(0, 100, 22) == (0, 20)
    assert window_span(50, 100, 22) == (40, 60)
    assert window_span(99, 100, 22) == (80, 100)
    assay = _assay("A" * 100, ["A3C:A90C", "A50C:A55C"])
    seg = plan_segments(assay, 22)
    assert seg.variant.tolist() == [1, 0, 0] and seg.start.tolist() == [41, 0, 79]


def test_model_labels() -> None:
    paths = [Path("out/a/checkpoints/last.ckpt"), Path("out/b/checkpoints/last.ckpt")]
    assert model_labels(paths) == ["a/last", "b/last"]
    assert model_labels([Path("x/y/best.ckpt")]) == ["y/best"]


# Singles and doubles of WT (the consensus of the rows), as mavenn's amyloid file lays them out.
ROWS = [
    (1, 0.5, "MKTAYIAKQRQISFVKSHFSRG"),
    (1, -1.0, "AKTAYIAKQRQISFVKSHFSRQ"),
    (1, 0.1, "MKTAYIAKQRQISFVKSHFSRA"),
    (2, 0.2, "MRTAYLAKQRQISFVKSHFSRQ"),
    (2, 0.7, "MKTAYIAKQRQISFVKSHWSRW"),
    (2, -0.3, "MKTAYIAKCRQISFVKSHFARQ"),
]


def _data_dir(root: Path) -> Path:
    text = "set,dist,y,x\n" + "".join(f"training,{d},{y},{x}\n" for d, y, x in ROWS)
    (root / "mavenn").mkdir(parents=True)
    (root / "mavenn" / "amyloid_data.csv.gz").write_bytes(gzip.compress(text.encode()))
    return root


def test_benchmark_command_end_to_end(tmp_path, ckpts, capsys) -> None:
    from protein_performer.cli.benchmark import benchmark

    data = _data_dir(tmp_path / "data")
    cfg = compose_train(
        [
            f"ckpt_path=[{ckpts['clm']},{ckpts['mlm']}]",
            "tasks=[dms]",
            f"data_dir={data}",
            "device=cpu",
            "progress=false",
            "dms.n_boot=50",
            "dms.wild_types={ubq: MQIFVKTLTGK}",
        ],
        output_dir=tmp_path / "run",
        config_name="benchmark",
    )
    summary = benchmark(cfg)["dms"]
    written = pd.read_csv(tmp_path / "run" / "dms" / "summary.csv")
    assert list(written.columns[:10]) == [
        "model", "assay", "variants", "n", "predictor", "strategy",
        "spearman", "ci_low", "ci_high", "ndcg",
    ]  # fmt: skip
    assert (
        len(written) == len(summary) == 2 * 3 * 4
    )  # models x (all, singles, doubles) x predictors
    assert set(written["variants"]) == {"all", "singles", "doubles"}
    assert set(written["predictor"]) == {"model", "blosum62", "unigram", "random_init"}
    all_rows = written[(written["variants"] == "all")]
    assert (all_rows["n"] == 6).all() and (
        written[written["variants"] == "singles"]["n"] == 3
    ).all()
    clm_label, mlm_label = model_labels([ckpts["clm"], ckpts["mlm"]])
    per_assay = pd.read_csv(tmp_path / "run" / "dms" / clm_label / "Abeta42_Seuma2022.csv")
    assert per_assay["strategy"].unique().tolist() == ["log-likelihood ratio (causal LM)"]
    assert per_assay["mutant"].tolist()[:2] == ["Q22G", "M1A"]
    loaded = load_model(ckpts["clm"])
    want = score_mutants(
        Engine(loaded.model, "cpu"),
        WT,
        [parse_mutant(m, WT) for m in per_assay["mutant"]],
        loaded.objective,
    )
    np.testing.assert_allclose(per_assay["model"], want, rtol=1e-5, atol=1e-5)
    heat = pd.read_csv(tmp_path / "run" / "dms" / mlm_label / "heatmap_ubq.csv", index_col=0)
    assert heat.shape == (20, 11) and heat.isna().sum().sum() == 11  # wild-type cells only
    assert heat.index.name == "mutant residue (masked marginal (masked LM))"
    assert (tmp_path / "run" / "dms" / "spearman.png").is_file()
    assert "dms:" in capsys.readouterr().out


def _cli(tmp_path, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from protein_performer.cli.benchmark import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys, "argv", ["protein-performer-benchmark", *args, f"hydra.run.dir={tmp_path / 'h'}"]
    )
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["tasks=[nope]"],
            "tasks: unknown task 'nope'; choose from ['contacts', 'disorder', 'dms'",
        ),
        (["dms.baselines=[esm]"], "dms.baselines: unknown 'esm'"),
        (["data_dir=missing"], "data_dir not found"),
        (["dms.assays=[X]"], "no assay 'X'"),
    ],
)
def test_input_errors_are_one_line_exit_2(tmp_path, ckpts, monkeypatch, capsys, args, message):
    _data_dir(tmp_path / "d")
    code, err = _cli(
        tmp_path, monkeypatch, capsys, f"ckpt_path={ckpts['clm']}", "data_dir=d", *args
    )
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
