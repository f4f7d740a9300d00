"""The README.md model card of an exported folder (Hugging Face front matter + sections)."""

from __future__ import annotations

from typing import Any

KERNELS = {
    "exact": "exact softmax attention (O(L^2))",
    "favor_softmax": "FAVOR+ with positive random features of the softmax kernel",
    "favor_relu": "FAVOR+ with ReLU features (Performer-ReLU)",
    "aft_full": "AFT-full (attention-free transformer, factorised position bias)",
    "aft_local": "AFT-local (attention-free transformer, windowed position bias)",
    "aft_simple": "AFT-simple (attention-free transformer, no position bias)",
    "aft_conv": "AFT-conv (attention-free transformer, depthwise convolution)",
}


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = [(k, v) for k, v in sorted(metrics.items()) if isinstance(v, (int, float))]
    if not rows:
        return "No evaluation figures were recorded with this run.\n"
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def model_card(config: dict[str, Any], *, license: str = "mit", name: str | None = None) -> str:
    """Markdown card for the folder whose ``config.json`` is ``config``."""
    m = config["model"]
    a = m["attention"]
    objective = config["objective"]["name"]
    head = config.get("head")
    training = config.get("training") or {}
    features = config.get("features")
    kind = a["kind"]
    auto = (
        (
            "AutoModelForTokenClassification"
            if head["level"] == "residue"
            else "AutoModelForSequenceClassification"
        )
        if head
        else ("AutoModelForCausalLM" if objective == "clm" else "AutoModelForMaskedLM")
    )
    title = name or f"protein-performer {kind} {objective.upper()}"
    tags = ["protein", "protein-language-model", "performer", kind, objective]
    out = [
        "---",
        f"license: {license}",
        "library_name: protein-performer",
        "tags:",
        *[f"- {t}" for t in tags],
        "---",
        "",
        f"# {title}",
        "",
        "## Architecture",
        "",
        f"- objective: **{objective}** ("
        + ("causal next-residue LM" if objective == "clm" else "masked LM")
        + ")",
        f"- attention: **{kind}**: {KERNELS.get(kind, kind)}",
        f"- {m['n_layers']} layers, d_model {m['d_model']}, {m['n_heads']} heads, d_ff "
        f"{m['d_ff']}, max_length {m['max_length']} tokens, positions {m['position']}",
    ]
    if kind.startswith("favor"):
        out.append(
            f"- nb_features {a['nb_features']} ({a['feature_type']}), redraw_interval "
            f"{a['redraw_interval']}, feature seed {a['seed']}"
        )
    if features:
        out.append(f"- FAVOR+ projections: {features['stored']}")
    if head:
        out.append(
            f"- task head: {head['level']}-level {head['problem']}, {head['num_labels']} "
            f"output(s), pooling {head['pooling']}, hidden {head['hidden']}"
            + (f", labels {head['label_names']}" if head.get("label_names") else "")
        )
    adapters = config.get("adapters")
    if adapters:
        out.append(
            f"- LoRA adapters kept apart (peft): r {adapters['r']}, alpha {adapters['alpha']}, "
            f"on {', '.join(adapters['target_modules'])}, in {' + '.join(adapters['files'])} "
            "beside the base weights; the Auto classes apply them (peft), the project's loaders "
            "fold them in"
        )
    out += [
        "",
        "Tokens: `<cls>` + residues + `<eos>` (alphabet in config.json and vocab.txt).",
        "",
        "## Training",
        "",
    ]
    if training:
        out += [f"- {k}: {v}" for k, v in training.items() if k != "metrics"]
    else:
        out.append("- not recorded")
    out += ["", "## Evaluation", "", _metrics_table(training.get("metrics") or {})]
    out += [
        "## How to load",
        "",
        "```python",
        "from protein_performer.model import PerformerLM",
        'model = PerformerLM.from_pretrained("path/to/folder")  # the language model, eval mode',
        "",
        "import protein_performer.hf  # registers the transformers Auto classes",
        f"from transformers import {auto}, AutoTokenizer",
        f'model = {auto}.from_pretrained("path/to/folder")',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/folder")',
        "```",
        "",
        "Every protein-performer command that takes `ckpt_path=` also takes this folder.",
        "Share it with `huggingface-cli upload <user>/<repo> path/to/folder` (not tested here).",
        "",
        f"## Licence\n\n{license}\n",
    ]
    return "\n".join(out)
