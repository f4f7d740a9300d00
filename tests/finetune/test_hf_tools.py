"""The Hugging Face tools on an exported folder: peft trains LoRA adapters on the Auto model
and reloads them (and the project's loader folds them when they sit beside the model); the
transformers Trainer fine-tunes a new classification head; a text-classification pipeline
names the fine-tune's classes. Tiny models, CPU, no network (local_files_only)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch
from common import make_checkpoint

from protein_performer.data.alphabet import ALPHABET
from protein_performer.finetune.export import export_checkpoint, load_classifier_folder
from protein_performer.masking import IGNORE
from protein_performer.runner import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A tiny masked LM (FAVOR+), exported with its tokenizer files."""
    root = tmp_path_factory.mktemp("hf")
    ckpt = make_checkpoint(root / "lm.ckpt", "mlm", [1.0 / 31] * 31, attention="favor_relu")
    return export_checkpoint(ckpt, root / "exported")


@pytest.fixture(scope="module")
def auto():
    import transformers

    import protein_performer.hf  # noqa: F401

    return transformers


def _masked_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(6, 26, (4, 14), generator=g)
    ids[:, 0], ids[:, -1] = ALPHABET.cls_idx, ALPHABET.eos_idx
    labels = torch.full_like(ids, IGNORE)
    labels[:, 3::4] = ids[:, 3::4]
    inputs = ids.clone()
    inputs[:, 3::4] = ALPHABET.mask_idx
    return inputs, torch.ones_like(ids), labels


def test_peft_trains_adapters_on_the_auto_model_and_reloads_them(folder, auto, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    x, mask, labels = _masked_batch()
    base = auto.AutoModelForMaskedLM.from_pretrained(folder, local_files_only=True)
    with torch.no_grad():
        before = base(x, attention_mask=mask).logits
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["to_q", "to_v"])
    model = get_peft_model(base, config)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    model(x, attention_mask=mask, labels=labels).loss.backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        after = model(x, attention_mask=mask).logits
    assert not torch.equal(after, before)  # B left zero: the step moved the adapters

    model.save_pretrained(tmp_path / "adapter")
    fresh = auto.AutoModelForMaskedLM.from_pretrained(folder, local_files_only=True)
    again = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.equal(again(x, attention_mask=mask).logits, after)

    # the adapters dropped beside the model: the project's one loader folds them in
    beside = Path(shutil.copytree(folder, tmp_path / "beside"))
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(tmp_path / "adapter" / name, beside / name)
    with torch.no_grad():
        folded = load_model(beside).model(x, mask.bool())
    torch.testing.assert_close(folded, after, atol=1e-5, rtol=0)


def _contains_c(n: int, seed: int = 0) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        s = [rng.choice("ADEFGHIKLMNPQRSTVWY") for _ in range(rng.randint(8, 16))]
        if i % 2:
            s[rng.randrange(len(s))] = "C"
        out.append(("".join(s), i % 2))
    return out


def test_trainer_fine_tunes_a_new_head_and_saves_a_folder_the_project_reads(folder, auto, tmp_path):
    tokenizer = auto.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = auto.AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=2, local_files_only=True
    )
    # a language model's folder: a new per-protein head, as num_labels asks
    assert model.config.head["level"] == "protein" and model.config.head["num_labels"] == 2
    for layer in (model.head.mlp[1], model.head.mlp[4]):  # nn.Linear's init, not raw memory
        bound = layer.in_features**-0.5
        assert 0 < layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    data = [{**tokenizer(s), "labels": y} for s, y in _contains_c(32)]
    head_before = model.head.mlp[-1].weight.detach().clone()
    args = auto.TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        max_steps=4,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = auto.Trainer(
        model=model,
        args=args,
        train_dataset=data,
        data_collator=auto.DataCollatorWithPadding(tokenizer),
    )
    trainer.train()
    assert trainer.state.global_step == 4
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert not torch.equal(model.head.mlp[-1].weight, head_before)

    trainer.save_model(str(tmp_path / "classifier"))
    net = load_classifier_folder(tmp_path / "classifier")
    batch = auto.DataCollatorWithPadding(tokenizer)([tokenizer(s) for s, _ in _contains_c(3, 9)])
    model.eval()
    with torch.no_grad():
        want = model(**batch).logits
        assert torch.equal(net(batch["input_ids"], batch["attention_mask"].bool()), want)


def test_text_classification_pipeline_names_the_classes(folder, auto, tmp_path):
    from test_lora_export import finetune_checkpoint

    ckpt = finetune_checkpoint(folder, tmp_path / "ft.ckpt")  # labels no / yes
    out = export_checkpoint(ckpt, tmp_path / "classifier", lora="adapters")
    classify = auto.pipeline("text-classification", model=str(out), tokenizer=str(out))
    got = classify("MKTCYIAK", top_k=None)
    ids = torch.tensor([ALPHABET.wrap(ALPHABET.encode("MKTCYIAK")).tolist()])
    with torch.no_grad():
        probs = load_classifier_folder(out).predict(ids)[0]
    assert {g["label"] for g in got} == {"no", "yes"}
    for g in got:
        assert g["score"] == pytest.approx(probs[["no", "yes"].index(g["label"])].item(), abs=1e-6)
