"""protein-performer-finetune: toy tasks with an obvious rule are learnt; a LoRA fine-tune
exports and reloads with the same predictions; bad label files name file, row and problem."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from common import tiny_config

from protein_performer.data.alphabet import ALPHABET
from protein_performer.finetune.baselines import composition, residue_windows
from protein_performer.finetune.data import (
    LabelEncoding,
    LabelFileError,
    LabelledDataset,
    class_weights,
    collate,
    read_labelled,
)
from protein_performer.finetune.run import FinetuneSetup, finetune
from protein_performer.masking import IGNORE
from protein_performer.model import PerformerLM
from protein_performer.training.optim import OptimConfig

pytestmark = pytest.mark.usefixtures("one_thread")
NO_C = "ADEFGHIKLMNPQRSTVWY"


def _lm(tmp_path: Path, kind: str = "favor_relu") -> Path:
    """A tiny untrained MLM, exported (the rule is learnable from the embeddings alone)."""
    torch.manual_seed(0)
    cfg = tiny_config(kind, d_model=32, n_layers=1, d_ff=64, max_length=48)
    return PerformerLM(cfg).save_pretrained(tmp_path / "lm")


def _toy(path: Path, n: int, level: str, seed: int = 0) -> Path:
    """Half the proteins hold one C. protein: label yes/no = contains a C; residue: 1 on
    C and W, else 0 (a comma list for odd rows, a string for even ones)."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t" if path.suffix == ".tsv" else ",")
        w.writerow(["id", "sequence", "label"])
        for i in range(n):
            s = [rng.choice(NO_C) for _ in range(rng.randint(10, 30))]
            if i % 2:
                s[rng.randrange(len(s))] = "C"
            seq = "".join(s)
            if level == "protein":
                label = "yes" if "C" in seq else "no"
            else:
                marks = ["1" if c in "CW" else "0" for c in seq]
                label = ",".join(marks) if i % 2 else "".join(marks)
            w.writerow([f"p{i}", seq, label])
    return path


def _setup(tmp_path: Path, train: Path, **kw) -> FinetuneSetup:
    values = dict(
        ckpt_path=_lm(tmp_path),
        train=train,
        out_dir=tmp_path / "out",
        hidden=32,
        head_dropout=0.0,
        optim=OptimConfig(lr=3e-3, warmup_steps=0, schedule="constant", weight_decay=0.0),
        trainer={"max_epochs": 6, "enable_progress_bar": False},
    )
    values.update(kw)
    return FinetuneSetup(**values)


def test_lora_learns_contains_c_and_exports_with_identical_predictions(tmp_path):
    from protein_performer.finetune.export import export_checkpoint, load_classifier_folder
    from protein_performer.finetune.module import FinetuneModule

    train = _toy(tmp_path / "train.csv", 200, "protein")
    valid = _toy(tmp_path / "valid.csv", 60, "protein", seed=1)
    result = finetune(
        _setup(
            tmp_path,
            train,
            valid=valid,
            mode="lora",
            optim=OptimConfig(lr=1e-2, warmup_steps=0, schedule="constant", weight_decay=0.0),
            trainer={"max_epochs": 8, "enable_progress_bar": False},
        )
    )
    assert result["model"]["valid/accuracy"] > 0.95
    assert result["labels"] == ["no", "yes"]
    assert result["baseline"]["name"] == "composition_logreg"
    assert np.asarray(result["confusion"]).sum() == 60
    # only the adapters and the head train: far fewer than the model's parameters
    assert 0 < result["trainable_parameters"] < 10_000
    out = tmp_path / "out"
    assert {"confusion.png", "curves.png", "metrics.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "metrics.json").read_text())["mode"] == "lora"

    best = Path(result["best_checkpoint"])
    module = FinetuneModule.load_from_checkpoint(best).eval()  # LoRA adapters unmerged
    assert module.mode == "lora"
    rows = read_labelled(valid)
    examples = LabelledDataset(rows.tokens, [0] * len(rows), 48)
    tokens = collate([examples[i] for i in range(len(rows))])
    with torch.no_grad():
        want = module.net.predict(tokens["tokens"], tokens["mask"])
    folder = export_checkpoint(best, tmp_path / "exported")
    again = load_classifier_folder(folder)
    got = again.predict(tokens["tokens"], tokens["mask"])
    # merging LoRA (W + BA) reorders float sums: identical predictions, probabilities ~1e-6
    assert torch.equal(got.argmax(-1), want.argmax(-1))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)

    from transformers import AutoModelForSequenceClassification

    import protein_performer.hf  # noqa: F401

    hf = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
    with torch.no_grad():
        logits = hf(tokens["tokens"], attention_mask=tokens["mask"].long()).logits
    assert torch.equal(logits.softmax(-1), got)
    config = json.loads((folder / "config.json").read_text())
    assert config["head"]["label_names"] == ["no", "yes"]
    assert config["architectures"] == ["PerformerForSequenceClassification"]


def test_per_residue_head_with_k_folds(tmp_path):
    train = _toy(tmp_path / "train.tsv", 120, "residue")
    result = finetune(_setup(tmp_path, train, level="residue", mode="head", folds=2))
    assert len(result["folds"]) == 2
    for fold in result["folds"]:
        assert fold["model"]["valid/accuracy"] > 0.95
        assert fold["baseline"]["name"] == "onehot_window15_logreg"
    assert result["mean"]["valid/accuracy"][0] > 0.95
    assert (tmp_path / "out" / "fold1" / "checkpoints" / "best.ckpt").is_file()


def test_residue_labels_align_after_cls_and_ignore_specials():
    tokens = [ALPHABET.encode("ACDE"), ALPHABET.encode("KL")]
    targets = [np.array([1, 0, 1, 1]), np.array([0, 1])]
    batch = collate([LabelledDataset(tokens, targets, 48)[i] for i in range(2)])
    # <cls> A C D E <eos> / <cls> K L <eos> <pad> <pad>
    assert batch["targets"].tolist() == [
        [IGNORE, 1, 0, 1, 1, IGNORE],
        [IGNORE, 0, 1, IGNORE, IGNORE, IGNORE],
    ]
    assert batch["mask"].sum(1).tolist() == [6, 4]


def test_class_weights_and_baseline_features():
    w = class_weights([0, 0, 0, 1], 2)  # n / (C * count): 4/6 and 4/2
    torch.testing.assert_close(w, torch.tensor([2 / 3, 2.0]))
    comp = composition([ALPHABET.encode("AAC")])
    assert comp[0, 0] == pytest.approx(2 / 3) and comp[0, 1] == pytest.approx(1 / 3)
    win = residue_windows([ALPHABET.encode("AC")], half_window=1)  # [2, 3 * 21]
    assert win.shape == (2, 63) and win.sum() == 6
    assert win[0, 20] == 1 and win[0, 21 + 0] == 1 and win[0, 42 + 1] == 1  # <off> A C


def _write(path: Path, rows: list[list[str]], header=("id", "sequence", "label")) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_bad_label_files_name_file_row_and_problem(tmp_path):
    bad = _write(tmp_path / "bad.csv", [["a", "MKV", "0,1,1"], ["b", "MKVL", "0,1,1"]])
    with pytest.raises(LabelFileError, match=r"bad\.csv: row 3 \(b\): 3 labels for a sequence"):
        read_labelled(bad, level="residue")
    short = _write(tmp_path / "short.csv", [["a", "MKV", "011"], ["b", "MKVL", "01"]])
    with pytest.raises(LabelFileError, match=r"row 3 \(b\): 2 labels for a sequence of 4"):
        read_labelled(short, level="residue")
    residue = _write(tmp_path / "res.csv", [["a", "MKJV", "yes"]])
    with pytest.raises(LabelFileError, match=r"res\.csv: row 2 \(a\): invalid residue 'J'"):
        read_labelled(residue)
    columns = _write(tmp_path / "cols.csv", [["a", "MKV", "x"]], header=("id", "seq", "y"))
    with pytest.raises(LabelFileError, match=r"no column\(s\) \['sequence', 'label'\]"):
        read_labelled(columns)
    empty = _write(tmp_path / "empty.csv", [["a", "MKV", ""]])
    with pytest.raises(LabelFileError, match="row 2 \\(a\\): empty label"):
        read_labelled(empty)
    rows = read_labelled(_write(tmp_path / "r.csv", [["a", "MKV", "high"]]))
    with pytest.raises(LabelFileError, match="'high' is not a number"):
        LabelEncoding("regression").encode(rows)
    fasta = tmp_path / "x.fasta"
    fasta.write_text(">P1 one\nMKV\n>P2 two\nMKVL\n")
    labels = _write(tmp_path / "y.csv", [["P1", "", "011"]])
    with pytest.raises(LabelFileError, match=r"y\.csv: no label for FASTA record 'P2'"):
        read_labelled(fasta, labels=labels, level="residue")


def test_cli_bad_labels_exit_2_with_one_line(tmp_path):
    lm = _lm(tmp_path)
    bad = _write(tmp_path / "bad.tsv.csv", [["a", "MKV", "0,1,1"], ["b", "MKVL", "0,1"]])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "protein_performer.cli.finetune",
            f"ckpt_path={lm}",
            f"data.train={bad}",
            "data.level=residue",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"},
    )
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "row 3 (b): 2 labels for a sequence of 4 residues" in lines[0]


def test_cli_config_runs_a_fixed_split(tmp_path):
    """conf/finetune.yaml composed as the command does, run in-process: mode=full, a FASTA
    train set with a labels file, class weights on, a CSV validation file, the random-init
    control."""
    from protein_performer.cli.config import compose_train
    from protein_performer.cli.finetune import run

    lm = _lm(tmp_path)
    fasta, labels = tmp_path / "train.fasta", tmp_path / "labels.tsv"
    with open(_toy(tmp_path / "t.csv", 80, "protein")) as f:
        rows = list(csv.DictReader(f))
    fasta.write_text("".join(f">{r['id']}\n{r['sequence']}\n" for r in rows))
    labels.write_text("id\tlabel\n" + "".join(f"{r['id']}\t{r['label']}\n" for r in rows))
    valid = _toy(tmp_path / "valid.csv", 20, "protein", seed=1)
    cfg = compose_train(
        [
            f"ckpt_path={lm}",
            f"data.train={fasta}",
            f"data.labels={labels}",
            f"data.valid={valid}",
            "mode=full",
            "class_weights=true",
            "random_init_control=true",
            "trainer.max_epochs=2",
            "trainer.enable_progress_bar=false",
        ],
        output_dir=tmp_path / "run",
        config_name="finetune",
    )
    result = run(cfg)
    assert result["mode"] == "full" and result["n_train"] == 80 and result["n_valid"] == 20
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()
    assert set(result["model"]) >= {"valid/accuracy", "valid/mcc", "valid/auroc"}
    # the random-init control: the same recipe from random weights, beside the model
    assert set(result["random_init"]["metrics"]) == set(result["model"])
    assert (tmp_path / "run" / "random_init" / "checkpoints" / "best.ckpt").is_file()


def test_builtin_task_reads_the_fetched_file_and_exports_a_token_classifier(tmp_path):
    """task=disorder reads <benchmarks>/aaanalysis/AA_LDR.tsv (here a stand-in in its format:
    entry, gene, sequence, comma-list labels); the fine-tuned token head exports and loads
    through AutoModelForTokenClassification with the same logits."""
    from protein_performer.cli.config import compose_train
    from protein_performer.cli.finetune import run
    from protein_performer.finetune.export import export_checkpoint, load_classifier_folder
    from protein_performer.finetune.tasks import TaskError

    folder = tmp_path / "benchmarks" / "aaanalysis"
    folder.mkdir(parents=True)
    with open(_toy(tmp_path / "toy.csv", 60, "residue")) as f:
        rows = list(csv.DictReader(f))
    lines = ["entry\tgene\tsequence\tlabel"] + [
        f"LDR_{i}\tname_{i}\t{r['sequence']}\t{','.join(r['label'].replace(',', ''))}"
        for i, r in enumerate(rows)
    ]
    (folder / "AA_LDR.tsv").write_text("\n".join(lines) + "\n")
    overrides = [
        f"ckpt_path={_lm(tmp_path)}",
        f"data.benchmarks={tmp_path / 'benchmarks'}",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "baselines=false",
    ]
    cfg = compose_train(
        [*overrides, "task=disorder"], output_dir=tmp_path / "run", config_name="finetune"
    )
    result = run(cfg)
    assert result["task"] == "disorder" and result["level"] == "residue"
    assert result["labels"] == ["0", "1"] and result["n_train"] + result["n_valid"] == 60

    out = export_checkpoint(result["best_checkpoint"], tmp_path / "exported")
    net = load_classifier_folder(out)
    from transformers import AutoModelForTokenClassification

    import protein_performer.hf  # noqa: F401

    hf = AutoModelForTokenClassification.from_pretrained(out, local_files_only=True)
    tokens = torch.from_numpy(ALPHABET.wrap(ALPHABET.encode("MKCWDEAC")))[None]
    with torch.no_grad():
        assert torch.equal(hf(tokens).logits, net(tokens))
    assert "AutoModelForTokenClassification" in (out / "README.md").read_text()

    missing = compose_train(
        [*overrides, "task=sa"], output_dir=tmp_path / "run2", config_name="finetune"
    )
    with pytest.raises(TaskError, match=r"AA_SA\.tsv not found; fetch it with"):
        run(missing)
