"""LoRA adapters (``peft``) on a PerformerLM's linear layers, and their merge for export."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from protein_performer.model.lm import PerformerLM

# What a fine-tune trains: the head alone (backbone frozen), LoRA adapters and the head, or all.
MODES = ("head", "lora", "full")
# Every nn.Linear of a block: the attention's query/key/value/output projections (every
# attention kind has these four; FAVOR+'s random projection is a buffer and AFT's position
# biases are plain parameters, neither adapted) and the two FFN layers, which hold half or
# more of a block's weights (2 d d_ff against 4 d^2). Adapting every linear layer of the block,
# not only q and v as the LoRA paper did, is what QLoRA (Dettmers et al. 2023) found necessary
# to match full fine-tuning. Embeddings, LayerNorms and the LM head stay frozen; the task head
# trains in full.
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out", "fc1", "fc2")


@dataclass
class LoraSettings:
    """LoRA (Hu et al. 2021): W + (alpha / r) B A on each target layer."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ValueError(f"lora.r must be > 0, got {self.r}")
        unknown = sorted(set(self.target_modules) - set(LORA_TARGETS))
        if unknown or not self.target_modules:
            raise ValueError(
                f"lora.target_modules must be a non-empty subset of {list(LORA_TARGETS)}, "
                f"got {list(self.target_modules)}"
            )
        self.target_modules = list(self.target_modules)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def add_lora(performer: PerformerLM, lora: LoraSettings) -> PerformerLM:
    """Inject LoRA adapters into the blocks' linear layers (in place); freezes the rest."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
    )
    inject_adapter_in_model(config, performer)
    for name, p in performer.named_parameters():
        p.requires_grad = "lora_" in name
    return performer


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every LoRA adapter into its base weight and put the plain nn.Linear back."""
    from peft.tuners.lora import LoraLayer

    for name, child in list(module.named_modules()):
        if isinstance(child, LoraLayer):
            child.merge()
            parent_name, _, attr = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            setattr(parent, attr, child.get_base_layer())
    return module
