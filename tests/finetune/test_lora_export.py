"""A fine-tuning checkpoint where a model is expected: LoRA adapters exported as peft shares
them (lora=adapters) give the checkpoint's predictions; runner.load_model reads a fine-tune
(.ckpt or folder) as its language model, adapters folded in as peft merges them; train
refuses one in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from common import make_checkpoint

from protein_performer.data.alphabet import ALPHABET
from protein_performer.finetune.export import export_checkpoint, load_classifier_folder
from protein_performer.finetune.heads import HeadConfig
from protein_performer.finetune.lora import LoraSettings, merge_lora
from protein_performer.finetune.module import FinetuneModule
from protein_performer.model.lora_fold import fold_lora, lora_scaling
from protein_performer.model.pretrained import PretrainedFolderError
from protein_performer.runner import load_model

pytestmark = pytest.mark.usefixtures("one_thread")
HEAD = HeadConfig(num_labels=2, hidden=8, dropout=0.0, label_names=["no", "yes"])


def finetune_checkpoint(
    base: Path, path: Path, mode: str = "lora", head: HeadConfig = HEAD, seed: int = 1
) -> Path:
    """A fine-tuning checkpoint of ``base`` as protein-performer-finetune writes one (hparams
    + state_dict), its LoRA B matrices random (trained adapters: B != 0, so they matter)."""
    loaded = load_model(base)
    module = FinetuneModule(
        loaded.model_cfg,
        loaded.objective,
        head,
        mode,
        LoraSettings(r=4, alpha=8.0, target_modules=["to_q", "to_v", "fc1", "fc2"]),
        residue_frequencies=loaded.residue_frequencies.tolist(),
    )
    module.load_backbone(loaded.model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "lora_B" in name or name.startswith("net.head"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    ckpt = {"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}
    torch.save({**ckpt, "global_step": 7, "epoch": 1}, path)
    return path


def tokens() -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    out = torch.randint(6, 26, (3, 16), generator=g)
    out[:, 0], out[:, -1] = ALPHABET.cls_idx, ALPHABET.eos_idx
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("base") / "lm.ckpt"
    return make_checkpoint(path, "mlm", [1.0 / 31] * 31, attention="favor_relu")


def test_fold_equals_peft_merge_bit_for_bit(base, tmp_path):
    ckpt = finetune_checkpoint(base, tmp_path / "ft.ckpt")
    module = FinetuneModule.load_from_checkpoint(ckpt)
    state = module.net.performer.state_dict()
    assert any("lora_A" in k for k in state)
    folded = fold_lora(state, lora_scaling(4, 8.0))
    merged = merge_lora(module.net.performer).state_dict()
    assert folded.keys() == merged.keys()
    assert all(torch.equal(folded[k], merged[k]) for k in merged)
    with pytest.raises(ValueError, match="adapter of blocks.0.attn.to_q is incomplete"):
        fold_lora({k: v for k, v in state.items() if "to_q.lora_B" not in k}, 2.0)


def test_adapter_export_gives_the_checkpoint_predictions(base, tmp_path):
    ckpt = finetune_checkpoint(base, tmp_path / "ft.ckpt")
    out = export_checkpoint(ckpt, tmp_path / "adapters", lora="adapters")
    files = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json"} <= files
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["lora_alpha"] == 8.0 and adapter["peft_type"] == "LORA"
    assert sorted(adapter["target_modules"]) == ["fc1", "fc2", "to_q", "to_v"]
    config = json.loads((out / "config.json").read_text())
    assert config["adapters"]["r"] == 4
    assert "LoRA adapters kept apart" in (out / "README.md").read_text()

    x = tokens()
    module = FinetuneModule.load_from_checkpoint(ckpt).eval()  # adapters unmerged
    with torch.no_grad():
        want = module(x)
        # transformers applies the adapters beside the model (peft, unmerged): bit for bit
        from transformers import AutoModelForSequenceClassification

        import protein_performer.hf  # noqa: F401

        hf = AutoModelForSequenceClassification.from_pretrained(out, local_files_only=True)
        assert torch.equal(hf(x).logits, want)
        # the project's loader folds them in (W + BA reorders float sums)
        got = load_classifier_folder(out)(x)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert torch.equal(got.argmax(-1), want.argmax(-1))

    # the merged export of the same checkpoint: the same folded weights, bit for bit
    merged = export_checkpoint(ckpt, tmp_path / "merged")
    assert "adapter_config.json" not in {p.name for p in merged.iterdir()}
    with torch.no_grad():
        assert torch.equal(load_classifier_folder(merged)(x), got)
        assert torch.equal(load_model(merged).model(x), load_model(out).model(x))
    # a merged export over an adapter export leaves no stale adapters to fold
    export_checkpoint(ckpt, out)
    assert not (out / "adapter_config.json").exists()
    assert "adapters" not in json.loads((out / "config.json").read_text())


def test_adapter_export_errors(base, tmp_path):
    with pytest.raises(ValueError, match="lora=adapters needs a LoRA fine-tune.*training"):
        export_checkpoint(base, tmp_path / "x", lora="adapters")
    head_only = finetune_checkpoint(base, tmp_path / "head.ckpt", mode="head")
    with pytest.raises(ValueError, match="is mode=head: export it with lora=merged"):
        export_checkpoint(head_only, tmp_path / "x", lora="adapters")
    with pytest.raises(ValueError, match="lora must be one of"):
        export_checkpoint(base, tmp_path / "x", lora="both")
    with pytest.raises(ValueError, match="is a folder: export takes a .ckpt"):
        export_checkpoint(tmp_path, tmp_path / "x")
    out = export_checkpoint(
        finetune_checkpoint(base, tmp_path / "ft.ckpt"), tmp_path / "ad", lora="adapters"
    )
    (out / "adapter_model.safetensors").unlink()  # a copy that left the adapters behind
    with pytest.raises(PretrainedFolderError, match="adapter_model.safetensors are missing"):
        load_model(out)


@pytest.mark.parametrize("mode", ["lora", "head", "full"])
def test_load_model_reads_a_finetune_checkpoint(base, tmp_path, mode):
    ckpt = finetune_checkpoint(base, tmp_path / "ft.ckpt", mode=mode)
    loaded = load_model(ckpt)
    pretrained = load_model(base)
    # the fine-tuned language model: the classifier's backbone, adapters merged by peft
    backbone = FinetuneModule.load_from_checkpoint(ckpt).merged_classifier().performer
    x = tokens()
    with torch.no_grad():
        assert torch.equal(loaded.model(x), backbone(x))
        changed = not torch.equal(loaded.model(x), pretrained.model(x))
    assert changed == (mode == "lora")  # head: frozen; full: the test leaves it as loaded
    assert not loaded.model.training
    assert loaded.objective == pretrained.objective
    assert loaded.residue_frequencies.tolist() == pretrained.residue_frequencies.tolist()
    # the exported folder (merged) is the same language model
    folder = export_checkpoint(ckpt, tmp_path / "exported")
    with torch.no_grad():
        assert torch.equal(load_model(folder).model(x), loaded.model(x))


def test_commands_read_a_finetune_checkpoint(base, tmp_path):
    """eval, embed and analyze on a fine-tune .ckpt give what they give on its adapter export
    (score and generate read the model through the same runner.load_model); train
    refuses a fine-tune checkpoint or a folder as ckpt_path in one line."""
    import numpy as np

    from protein_performer.cli.config import ConfigError, build_setup, compose_train
    from protein_performer.cli.embed import embed
    from protein_performer.cli.evaluate import evaluate

    ckpt = finetune_checkpoint(base, tmp_path / "ft.ckpt")
    folder = export_checkpoint(ckpt, tmp_path / "adapters", lora="adapters")

    def run(fn, name, model, *extra):
        cfg = compose_train(
            [f"ckpt_path={model}", "device=cpu", "progress=false", *extra],
            output_dir=tmp_path / f"{name}_{model.name}",
            config_name=name,
        )
        return fn(cfg)

    a, b = (run(evaluate, "eval", m, "max_proteins=4") for m in (ckpt, folder))
    (fa,), (fb,) = a["files"].values(), b["files"].values()
    assert fa["perplexity"] == fb["perplexity"] and fa["accuracy"] == fb["accuracy"]
    assert fa["unigram_perplexity"] == pytest.approx(25.0, rel=1e-3)  # uniform frequencies
    fasta = tmp_path / "few.fasta"
    fasta.write_text(">a\nMKTAYIAKQR\n>b\nMCWDEKLLAP\n>c\nGSHM\n")
    few = f"fasta=[{fasta}]"
    (da,), (db,) = (run(embed, "embed", m, few).values() for m in (ckpt, folder))
    arrays = sorted(Path(da).rglob("*.npz"))
    assert arrays
    for fa in arrays:
        za, zb = np.load(fa), np.load(Path(db) / fa.relative_to(da))
        # the .ckpt folds in float as the folder's reader does: the same embeddings
        assert all(np.array_equal(za[k], zb[k]) for k in za.files)

    from protein_performer.cli.analyze import analyze

    extra = ("n_proteins=4", "n_permutations=0", "figures=false", "control=false")
    (va, vb) = (run(analyze, "analyze", m, *extra) for m in (ckpt, folder))
    assert va["overall"]["vig"]["BLOSUM62"] == vb["overall"]["vig"]["BLOSUM62"]

    for model, match in ((ckpt, "is a fine-tuning checkpoint"), (folder, "is a folder")):
        cfg = compose_train(
            [f"ckpt_path={model}"], output_dir=tmp_path / "train", config_name="train"
        )
        with pytest.raises(ConfigError, match=match):
            build_setup(cfg)


def test_export_command_takes_lora_adapters(base, tmp_path):
    from protein_performer.cli.config import compose_train
    from protein_performer.cli.export import export

    ckpt = finetune_checkpoint(base, tmp_path / "ft.ckpt")
    cfg = compose_train(
        [f"ckpt_path={ckpt}", f"out={tmp_path / 'out'}", "lora=adapters"],
        output_dir=tmp_path / "run",
        config_name="export",
    )
    folder = export(cfg)
    assert (folder / "adapter_model.safetensors").is_file()
    assert json.loads((folder / "config.json").read_text())["adapters"]["target_modules"]
