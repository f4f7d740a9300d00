"""Tasks contacts, ss, location, disorder through protein-performer-benchmark, end to end on
a tiny checkpoint and tiny hand-made data (the real sets are measured in docs/benchmarks.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from protein_performer.benchmarks.probe_tasks import LabelledSetError, read_labelled
from protein_performer.cli.config import compose_train
from protein_performer.data.alphabet import STANDARD_AMINO_ACIDS

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from test_evaluate import make_checkpoint  # noqa: E402
from test_structures import atom  # noqa: E402

THREE = {a: t for t, a in [("ALA", "A"), ("GLY", "G"), ("LEU", "L"), ("LYS", "K"), ("GLU", "E")]}


def write_chain(directory: Path, name: str, rng: np.random.Generator, length: int = 40) -> None:
    """A compact random chain (steps of 1.9 A, so it has contacts) with a random DSSP string."""
    seq = "".join(rng.choice(list(THREE), size=length))
    steps = rng.normal(size=(length, 3))
    ca = np.cumsum(1.9 * steps / np.linalg.norm(steps, axis=1, keepdims=True), axis=0)
    lines, serial = [], 1
    for i, aa in enumerate(seq):
        lines.append(atom(serial, "CA", THREE[aa], i + 1, ca[i]))
        serial += 1
        if aa != "G":
            lines.append(atom(serial, "CB", THREE[aa], i + 1, ca[i] + [0.0, 1.5, 0.0]))
            serial += 1
    (directory / f"{name}.pdb").write_text("\n".join(lines) + "\nEND\n")
    ss = "".join(rng.choice(list("HE-"), size=length))
    (directory / f"{name}.pdb.dssp").write_text(f"{ss} {name}.pdb\n")


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> None:
    table = pd.DataFrame(
        [(f"E{i}", f"g{i}", s, lab) for i, (s, lab) in enumerate(rows)],
        columns=["entry", "gene", "sequence", "label"],
    )
    table.to_csv(path, sep="\t", index=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("bench")
    (root / "dssp").mkdir()
    for n in range(6):
        write_chain(root / "dssp", f"c{n}", rng)
    (root / "aaanalysis").mkdir()
    aas = list(STANDARD_AMINO_ACIDS)
    proteins = ["".join(rng.choice(aas, size=int(rng.integers(20, 90)))) for _ in range(60)]
    write_tsv(
        root / "aaanalysis" / "SEQ_LOCATION.tsv", [(s, n % 2) for n, s in enumerate(proteins)]
    )
    residues = [(s, ",".join(str(int(a in "KDE")) for a in s)) for s in proteins[:20]]
    write_tsv(root / "aaanalysis" / "AA_LDR.tsv", residues)
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.ckpt", "clm", None)


def test_structure_and_probe_tasks_end_to_end(tmp_path, ckpt, data_dir) -> None:
    from protein_performer.cli.benchmark import benchmark

    cfg = compose_train(
        [
            f"ckpt_path={ckpt}",
            "tasks=[contacts,ss,location,disorder]",
            f"data_dir={data_dir}",
            "device=cpu",
            "progress=false",
            "contacts.train_chains=[c0,c2,c4]",
            "contacts.n_bootstrap=20",
            "ss.n_bootstrap=20",
            "location.n_bootstrap=20",
            "disorder.n_bootstrap=20",
            "disorder.window=1",
        ],
        output_dir=tmp_path / "run",
        config_name="benchmark",
    )
    results = benchmark(cfg)
    task_dir = tmp_path / "run"
    contacts = pd.read_csv(task_dir / "contacts" / "summary.csv")
    assert list(contacts.columns) == [
        "model", "predictor", "range", "k", "precision", "ci_low", "ci_high", "n_chains",
    ]  # fmt: skip
    assert set(contacts["predictor"]) == {
        "model", "random_init", "best_single_head", "contact_density",
    }  # fmt: skip
    assert (contacts["n_chains"] == 3).all() and len(contacts) == 4 * 2 * 3
    label = contacts["model"].iloc[0]
    per_chain = pd.read_csv(task_dir / "contacts" / label / "per_chain.csv")
    assert set(per_chain["chain"]) == {"c1", "c3", "c5"}  # held-out chains only
    heads = pd.read_csv(task_dir / "contacts" / label / "heads.csv")
    assert len(heads) == 1 * 2 and heads["best_single_head"].sum() == 1  # 1 layer x 2 heads
    for figure in ("contact_maps.png", "head_precision.png"):
        assert (task_dir / "contacts" / label / figure).stat().st_size > 1000
    for task, baseline in [("ss", "onehot_window"), ("location", "aa_composition"),
                           ("disorder", "onehot_window")]:  # fmt: skip
        table = pd.read_csv(task_dir / task / "summary.csv")
        assert list(table.columns) == ["model", "predictor", "metric", "value", "ci_low", "ci_high"]
        assert set(table["predictor"]) == {"model", "random_init", baseline, "majority_class"}
        assert set(table["metric"]) == {"accuracy", "balanced_accuracy", "mcc", "auroc"}
        assert len(results[task]) == len(table) == 16
    # disorder here is "the residue is K, D or E": the one-hot window reads it off exactly
    disorder = results["disorder"].set_index(["predictor", "metric"])["value"]
    assert disorder["onehot_window", "accuracy"] == 1.0


def test_labelled_set_errors_name_the_file_and_row(tmp_path) -> None:
    path = tmp_path / "AA_X.tsv"
    write_tsv(path, [("ACD", "1,0,1"), ("AC", "1,0,1")])
    with pytest.raises(LabelledSetError, match=r"AA_X.tsv row 3: 3 labels for 2 residues"):
        read_labelled(path, per_residue=True)
    write_tsv(path, [("ACD", "1,0,1")])
    data = read_labelled(path, per_residue=True)
    assert data.labels[0].tolist() == [1, 0, 1] and data.sequences == ["ACD"]
    with pytest.raises(LabelledSetError, match="not found"):
        read_labelled(tmp_path / "absent.tsv", per_residue=False)


def test_bad_options_name_the_task_and_field() -> None:
    from protein_performer.benchmarks.task_types import TaskError
    from protein_performer.benchmarks.tasks import get_task, task_options

    with pytest.raises(TaskError, match=r"^ss\.C must be > 0, got 0$"):
        task_options(get_task("ss"), {"C": 0})
    with pytest.raises(TaskError, match=r"^sa\.test_fraction must be in \(0, 1\), got 1.5$"):
        task_options(get_task("sa"), {"test_fraction": 1.5})
    with pytest.raises(TaskError, match=r"^contacts\.train_chains: give at least 2"):
        task_options(get_task("contacts"), {"train_chains": ["1abcA"]})
