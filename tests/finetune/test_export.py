"""protein-performer-export: a checkpoint -> folder -> the same logits, bit for bit, through
PerformerLM.from_pretrained, the one loader (load_model on a directory) and transformers' Auto
classes; the tokenizer files give the model's ids; bad folders get one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from common import REPO, make_checkpoint

from protein_performer.data.alphabet import ALPHABET
from protein_performer.finetune.export import export_checkpoint
from protein_performer.model import PerformerLM
from protein_performer.model.pretrained import PretrainedFolderError
from protein_performer.runner import load_model, load_pretrained_folder

pytestmark = pytest.mark.usefixtures("one_thread")

# every attention kind, with the position kinds spread over them (rotary and sinusoidal
# tables are rebuilt on load, not stored)
KINDS = {
    "exact": "rotary",
    "favor_softmax": "learned",
    "favor_relu": "rotary",
    "aft_full": "learned",
    "aft_local": "sinusoidal",
    "aft_simple": "learned",
    "aft_conv": "sinusoidal",
}


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(6, 26, (3, 24), generator=g)
    tokens[:, 0], tokens[:, -1] = ALPHABET.cls_idx, ALPHABET.eos_idx
    tokens[2, 17:] = ALPHABET.pad_idx
    return tokens, tokens != ALPHABET.pad_idx


@pytest.fixture(scope="module")
def transformers_auto():
    """The Auto classes after ``import protein_performer.hf`` (imports transformers once)."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    import protein_performer.hf  # noqa: F401

    return {"mlm": AutoModelForMaskedLM, "clm": AutoModelForCausalLM}


@pytest.mark.parametrize("objective", ["mlm", "clm"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_round_trip_is_bit_exact(kind, objective, tmp_path, transformers_auto):
    ckpt = make_checkpoint(
        tmp_path / "run" / "checkpoints" / "last.ckpt",
        objective,
        [1.0 / 31] * 31,
        position=KINDS[kind],
        attention=kind,
        redraw_interval=1,  # FAVOR+: the saved projection is a redraw, not the step-0 draw
    )
    out = export_checkpoint(ckpt, tmp_path / "exported")
    tokens, mask = _batch()
    reference = load_model(ckpt)
    with torch.no_grad():
        want = reference.model(tokens, mask)
        for model in (
            PerformerLM.from_pretrained(out),
            load_model(out).model,  # the one loader takes a folder too
        ):
            assert not model.training
            assert torch.equal(model(tokens, mask), want)
        hf = transformers_auto[objective].from_pretrained(out, local_files_only=True)
        assert not hf.training
        assert torch.equal(hf(tokens, attention_mask=mask.long()).logits, want)

    folder = load_pretrained_folder(out)
    assert folder.objective == reference.objective
    assert folder.model_cfg == reference.model_cfg
    assert folder.residue_frequencies.tolist() == reference.residue_frequencies.tolist()
    config = json.loads((out / "config.json").read_text())
    if kind.startswith("favor"):
        # the record says how the stored projections were drawn: redrawn at step 1 (the
        # second of two steps), so a step-0 redraw on load would have changed the logits
        assert [d["step"] for d in config["features"]["draws"]] == [1]
        assert config["features"]["nb_features"] == 16
    else:
        assert config["features"] is None
    card = (out / "README.md").read_text()
    assert f"attention: **{kind}**" in card and "- steps: 2" in card


def test_tokenizer_files_give_the_model_ids(tmp_path, transformers_auto):
    from transformers import AutoTokenizer

    ckpt = make_checkpoint(tmp_path / "m.ckpt", "mlm", None)
    out = export_checkpoint(ckpt, tmp_path / "exported")
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    seq = "MKTAYIAKQRW"
    want = ALPHABET.wrap(ALPHABET.encode(seq)).tolist()
    assert tok(seq)["input_ids"] == want
    assert tok.pad_token_id == ALPHABET.pad_idx and tok.mask_token_id == ALPHABET.mask_idx
    # and a transformers pipeline runs on the folder: the model's probabilities at <mask>
    from transformers import pipeline

    top = pipeline("fill-mask", model=str(out), tokenizer=str(out))("MKT<mask>YIAK", top_k=3)
    ids = torch.tensor([ALPHABET.wrap(ALPHABET.encode("MKTAYIAK")).tolist()])
    ids[0, 4] = ALPHABET.mask_idx
    with torch.no_grad():
        probs = PerformerLM.from_pretrained(out)(ids)[0, 4].softmax(-1)
    want = probs.topk(3)
    assert [t["token"] for t in top] == want.indices.tolist()
    assert [t["score"] for t in top] == pytest.approx(want.values.tolist(), abs=1e-6)


def test_model_card_carries_run_metrics(tmp_path):
    run = tmp_path / "run"
    ckpt = make_checkpoint(run / "checkpoints" / "last.ckpt", "clm", None, attention="favor_relu")
    (run / "metrics.json").write_text(json.dumps({"valid/perplexity": 17.25, "note": "x"}))
    out = export_checkpoint(ckpt, tmp_path / "exported", license="apache-2.0")
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\n")
    assert "| valid/perplexity | 17.25 |" in card
    assert "AutoModelForCausalLM" in card and "nb_features 16" in card


def test_bad_folders_get_one_line_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PretrainedFolderError, match="lacks config.json and model.safetensors"):
        load_model(empty)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (foreign / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(PretrainedFolderError, match="model_type is 'bert'"):
        PerformerLM.from_pretrained(foreign)
    damaged = tmp_path / "damaged"
    ckpt = make_checkpoint(tmp_path / "m.ckpt", "mlm", None)
    export_checkpoint(ckpt, damaged)
    (damaged / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(PretrainedFolderError, match="not a readable safetensors file"):
        load_model(damaged)


def _cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"protein_performer.cli.{module}", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"},
    )


def test_export_cli_and_a_folder_as_ckpt_path(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.ckpt", "clm", None)
    done = _cli("export", f"ckpt_path={ckpt}", "out=exported", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"model.safetensors", "config.json", "vocab.txt", "README.md"} <= {
        p.name for p in (tmp_path / "exported").iterdir()
    }
    # another command reads the folder where it reads a checkpoint
    sampled = _cli(
        "generate",
        "ckpt_path=exported",
        "n=2",
        "max_new_tokens=5",
        "output=s.fasta",
        "progress=false",
        cwd=tmp_path,
    )
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert (tmp_path / "s.fasta").read_text().count(">") == 2
    # a folder that is not an export: one line, exit status 2
    (tmp_path / "notes").mkdir()
    bad = _cli("generate", "ckpt_path=notes", "n=1", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "lacks config.json" in bad.stderr


def test_import_stays_cheap():
    """``import protein_performer`` imports neither torch-heavy modules nor transformers."""
    code = "import sys, protein_performer; print('transformers' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.stdout.strip() == "False", done.stderr


def test_every_model_command_reads_a_folder(tmp_path):
    """eval, embed and score give the same results for the folder as for the checkpoint it
    was exported from (generate: test_export_cli_and_a_folder_as_ckpt_path; analyze reads
    through the same runner.load_model)."""
    import numpy as np

    from protein_performer.cli.config import compose_train
    from protein_performer.cli.embed import embed
    from protein_performer.cli.evaluate import evaluate
    from protein_performer.cli.score import score

    ckpt = make_checkpoint(tmp_path / "m.ckpt", "mlm", [1.0 / 31] * 31)
    folder = export_checkpoint(ckpt, tmp_path / "exported")
    (tmp_path / "m.csv").write_text("mutant,measured\nK2A,0.1\nT3G,0.5\nY5W,0.2\n")
    runs = {
        "eval": (evaluate, ["max_proteins=6"]),
        "embed": (embed, ["layers=[-1]"]),
        "score": (score, ["wild_type=MKTAYIAK", f"mutations={tmp_path / 'm.csv'}"]),
    }

    def without_paths(obj):
        """The result with every string that names a path of this test dropped."""
        if isinstance(obj, dict):
            return {k: without_paths(v) for k, v in obj.items() if str(tmp_path) not in str(v)}
        if isinstance(obj, list):
            return [without_paths(v) for v in obj]
        return obj

    for name, (fn, extra) in runs.items():
        results = []
        for model in (ckpt, folder):
            cfg = compose_train(
                [f"ckpt_path={model}", "device=cpu", "progress=false", *extra],
                output_dir=tmp_path / f"{name}_{model.name}",
                config_name=name,
            )
            results.append(fn(cfg))
        a, b = results
        if name == "embed":
            (da,), (db,) = a.values(), b.values()
            for fa in sorted(Path(da).rglob("*.npz")):
                za, zb = np.load(fa), np.load(Path(db) / fa.relative_to(da))
                assert all(np.array_equal(za[k], zb[k]) for k in za.files)
        elif name == "score":
            assert Path(a["csv"]).read_text() == Path(b["csv"]).read_text()
        else:
            dump = lambda r: json.dumps(without_paths(r), sort_keys=True, default=str)  # noqa: E731
            assert dump(a) == dump(b) and "perplexity" in dump(a)
