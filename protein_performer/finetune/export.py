"""Export a checkpoint (pre-trained or fine-tuned) to a Hugging Face style folder.

    export_checkpoint("run/checkpoints/last.ckpt", "exported/")

writes ``model.safetensors`` and ``config.json`` (:mod:`protein_performer.model.pretrained`),
the tokenizer files (``vocab.txt``, ``tokenizer_config.json``, ``special_tokens_map.json``:
``transformers``' ``EsmTokenizer`` reads them and gives the model's ``<cls>`` + residues +
``<eos>`` ids) and ``README.md``, a model card with the run's steps, data and metrics.json.
A LoRA fine-tune is written with its adapters merged (``lora="merged"``) or, with
``lora="adapters"``, as ``peft`` shares one: the base weights and, beside them,
``adapter_config.json`` + ``adapter_model.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from protein_performer.data.alphabet import ALPHABET
from protein_performer.errors import InputError
from protein_performer.finetune.card import model_card
from protein_performer.finetune.heads import HeadConfig, PerformerClassifier
from protein_performer.finetune.module import FinetuneModule, classifier_from_checkpoint
from protein_performer.model.checkpoint import read_checkpoint
from protein_performer.model.lm import PerformerLM
from protein_performer.model.pretrained import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    CONFIG_FILE,
    HEAD_PREFIX,
    PretrainedFolderError,
    config_objects,
    load_backbone,
    read_folder_config,
    read_folder_weights,
    save_folder,
    split_state,
)
from protein_performer.runner import load_model

# how a LoRA fine-tune is exported: adapters merged into the weights, or kept apart (peft)
LORA_EXPORTS = ("merged", "adapters")
SPECIAL = {
    "cls_token": "<cls>",
    "eos_token": "<eos>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
    "unk_token": "<unk>",
}


def write_tokenizer(out: Path, max_length: int) -> None:
    """vocab.txt (one token per line, in index order) and the EsmTokenizer settings."""
    (out / "vocab.txt").write_text("\n".join(ALPHABET.tokens) + "\n")
    settings = {"tokenizer_class": "EsmTokenizer", "model_max_length": max_length, **SPECIAL}
    (out / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(SPECIAL, indent=2) + "\n")


def run_dir_of(ckpt_path: Path) -> Path:
    """The run directory of a checkpoint (``<run>/checkpoints/x.ckpt`` -> ``<run>``)."""
    parent = ckpt_path.parent
    return parent.parent if parent.name == "checkpoints" else parent


def training_record(ckpt_path: Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    """Steps, data and settings of the run, and its metrics.json when present."""
    hp = ckpt["hyper_parameters"]
    run = run_dir_of(ckpt_path)
    record: dict[str, Any] = {
        "checkpoint": ckpt_path.name,
        "steps": int(ckpt.get("global_step", 0)),
        "epochs": int(ckpt.get("epoch", 0)),
    }
    for key in ("seed", "mode", "task"):
        if hp.get(key) is not None:
            record[key] = hp[key]
    optim = hp.get("optim") or {}
    if optim:
        record["optimiser"] = ", ".join(
            f"{k} {optim[k]}" for k in ("lr", "weight_decay", "warmup_steps") if k in optim
        )
    hydra_cfg = run / ".hydra" / "config.yaml"
    if hydra_cfg.is_file():
        from omegaconf import OmegaConf

        data = OmegaConf.load(hydra_cfg).get("data") or {}
        for key in ("train", "valid"):
            if data.get(key) is not None:
                value = data[key]
                names = [value] if isinstance(value, str) else list(value)
                record[f"data.{key}"] = ", ".join(Path(str(v)).name for v in names)
    metrics = run / "metrics.json"
    if metrics.is_file():
        try:
            record["metrics"] = json.loads(metrics.read_text())
        except json.JSONDecodeError:
            pass
    return record


def export_checkpoint(
    ckpt_path: str | Path,
    out: str | Path,
    *,
    license: str = "mit",
    name: str | None = None,
    lora: str = "merged",
) -> Path:
    """Write the folder for ``ckpt_path`` (a training or fine-tuning checkpoint) into ``out``.
    ``lora``: a LoRA fine-tune's adapters ``merged`` into the weights, or kept as ``adapters``
    (:func:`write_adapters`)."""
    path = Path(ckpt_path)
    out = Path(out)
    if lora not in LORA_EXPORTS:
        raise InputError(f"lora must be one of {list(LORA_EXPORTS)}, got {lora!r}")
    if path.is_dir():
        raise InputError(
            f"ckpt_path={path} is a folder: export takes a .ckpt (protein-performer-train or "
            "-finetune); an exported folder is already what export writes"
        )
    ckpt = read_checkpoint(path)
    training = training_record(path, ckpt)
    hp = ckpt["hyper_parameters"]
    if lora == "adapters" and hp.get("mode") != "lora":
        raise InputError(
            f"lora=adapters needs a LoRA fine-tune (protein-performer-finetune mode=lora); "
            f"{path} is {'mode=' + str(hp['mode']) if 'mode' in hp else 'a training checkpoint'}"
            ": export it with lora=merged"
        )
    if lora == "adapters":
        return write_adapters(path, ckpt, out, training, license=license, name=name)
    if "head" in hp:
        net, objective = classifier_from_checkpoint(ckpt, path)
        lm, head, freqs = net.performer, net.head, hp.get("residue_frequencies")
        head_config = net.head_cfg.to_dict()
        arch = (
            "PerformerForTokenClassification"
            if net.head_cfg.level == "residue"
            else "PerformerForSequenceClassification"
        )
    else:
        loaded = load_model(path)
        lm, objective, head, head_config, arch = loaded.model, loaded.objective, None, None, None
        freqs = loaded.residue_frequencies
    save_folder(
        out,
        lm,
        objective,
        residue_frequencies=freqs,
        head=head,
        head_config=head_config,
        training=training,
        architecture=arch,
    )
    return finish_folder(out, lm.cfg.max_length, license=license, name=name)


def finish_folder(
    out: Path, max_length: int, *, license: str, name: str | None, **config_extra: Any
) -> Path:
    """The tokenizer files and the model card beside config.json (``config_extra`` added to
    config.json first)."""
    write_tokenizer(out, max_length)
    config = json.loads((out / CONFIG_FILE).read_text())
    if config_extra:
        config.update(config_extra)
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    (out / "README.md").write_text(model_card(config, license=license, name=name))
    return out


def write_adapters(
    path: Path,
    ckpt: dict[str, Any],
    out: Path,
    training: dict[str, Any],
    *,
    license: str,
    name: str | None,
) -> Path:
    """A LoRA fine-tune as ``peft`` shares one: the base model (pre-trained backbone and the
    trained task head: config.json + model.safetensors) and, beside it, the adapters
    (``adapter_config.json`` + ``adapter_model.safetensors``, ``PeftModel.save_pretrained``).
    ``transformers``' Auto classes apply adapters found beside a model; ``PerformerLM`` /
    ``load_model`` / ``load_classifier_folder`` fold them in."""
    from peft import LoraConfig, get_peft_model

    module = FinetuneModule.load_from_checkpoint(path)  # the adapters unmerged
    net, settings = module.net, module.lora
    base = PerformerLM(net.performer.cfg)
    plain = {k.replace(".base_layer.", "."): v for k, v in net.performer.state_dict().items()}
    base.load_state_dict({k: v for k, v in plain.items() if "lora_" not in k})
    arch = (
        "PerformerForTokenClassification"
        if net.head_cfg.level == "residue"
        else "PerformerForSequenceClassification"
    )
    save_folder(
        out,
        base,
        module.objective,
        residue_frequencies=ckpt["hyper_parameters"].get("residue_frequencies"),
        head=net.head,
        head_config=net.head_cfg.to_dict(),
        training=training,
        architecture=arch,
    )
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
    )
    peft_model = get_peft_model(PerformerClassifier(base, net.head_cfg), config)
    peft_model.base_model.model.load_state_dict(net.state_dict())  # the same injected layout
    peft_model.save_pretrained(out)
    adapters = {
        "files": [ADAPTER_CONFIG, ADAPTER_WEIGHTS],
        "kind": "lora",
        "r": settings.r,
        "alpha": settings.alpha,
        "target_modules": list(settings.target_modules),
    }
    return finish_folder(out, base.cfg.max_length, license=license, name=name, adapters=adapters)


def load_classifier_folder(path: str | Path, map_location: str = "cpu"):
    """The fine-tuned :class:`PerformerClassifier` of an exported folder, in eval mode."""
    p = Path(path)
    config = read_folder_config(p)
    if not config.get("head"):
        raise PretrainedFolderError(
            f"{p} holds a language model without a task head: fine-tune it first "
            "(protein-performer-finetune ckpt_path=... then protein-performer-export)"
        )
    cfg, _ = config_objects(config, p)
    try:
        head = HeadConfig.from_dict(dict(config["head"]))
    except (TypeError, ValueError) as err:
        raise PretrainedFolderError(f"{p}: bad head in config.json: {err}") from None
    net = PerformerClassifier(PerformerLM(cfg), head)
    state = read_folder_weights(p)
    load_backbone(net.performer, state, p)
    try:
        net.head.load_state_dict(split_state(state, HEAD_PREFIX))
    except RuntimeError as err:
        raise PretrainedFolderError(f"{p}: head weights do not match config.json: {err}") from None
    return net.to(map_location).eval()
