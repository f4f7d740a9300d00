"""``transformers`` classes over an exported folder (imports ``transformers``: slow, ~1-20 s).

Registered with the Auto classes by ``import protein_performer.hf``:

    import protein_performer.hf
    from transformers import AutoModelForMaskedLM
    model = AutoModelForMaskedLM.from_pretrained("exported/", local_files_only=True)
    model(input_ids, attention_mask=mask).logits        # [B, L, V], as PerformerLM's

``PerformerConfig`` keeps config.json's sections (``model``, ``objective``, ``head``...) as
plain dicts; every class holds a :class:`PerformerLM` as ``performer`` (and a
:class:`TaskHead` as ``head``), the key prefixes of ``model.safetensors``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import (
    CausalLMOutput,
    MaskedLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from protein_performer.finetune.heads import HeadConfig, TaskHead, final_hidden
from protein_performer.masking import IGNORE
from protein_performer.model.config import ModelConfig
from protein_performer.model.embeddings import RotaryEmbedding, SinusoidalPositions
from protein_performer.model.lm import PerformerLM
from protein_performer.model.pretrained import MODEL_TYPE


class PerformerConfig(PretrainedConfig):
    """config.json of an exported folder; ``model`` is :meth:`ModelConfig.to_dict`."""

    model_type = MODEL_TYPE

    def __init__(
        self,
        model: dict[str, Any] | None = None,
        objective: dict[str, Any] | None = None,
        head: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.model = dict(model) if model else ModelConfig().to_dict()
        self.objective = dict(objective) if objective else {"name": "mlm", "mask_prob": 0.15}
        self.head = head
        names = (head or {}).get("label_names") or []
        if names and "id2label" not in kwargs:  # pipelines name the classes
            kwargs["id2label"] = dict(enumerate(names))
        kwargs.setdefault("is_decoder", bool(self.model.get("causal", False)))
        kwargs.setdefault("tie_word_embeddings", False)  # PerformerLM ties by itself
        super().__init__(**kwargs)

    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.model)

    def head_config(self) -> HeadConfig:
        if not self.head:
            raise ValueError(
                "this folder has no task head (config.json head is null): load it with "
                "AutoModelForMaskedLM / AutoModelForCausalLM, or fine-tune it first"
            )
        return HeadConfig.from_dict(dict(self.head))


def _mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    return None if attention_mask is None else attention_mask.to(torch.bool)


class PerformerPreTrainedModel(PreTrainedModel):
    """Shared settings: weights come from model.safetensors (PerformerLM initialises itself)."""

    config_class = PerformerConfig
    base_model_prefix = "performer"
    supports_gradient_checkpointing = False
    _no_split_modules = ["Block"]

    @classmethod
    def get_init_context(cls, *args: Any, **kwargs: Any) -> list:
        # Build on the CPU, not on the meta device: a FAVOR+ layer draws its projection from
        # its layer id at construction (.item() of a buffer). The folder's tensors then
        # replace the drawn ones, so the model equals PerformerLM.from_pretrained's.
        contexts = super().get_init_context(*args, **kwargs)
        return [c for c in contexts if not isinstance(c, torch.device)]

    def _init_weights(self, module: torch.nn.Module) -> None:
        # PerformerLM and TaskHead initialise in their constructors; the folder overwrites
        # every persistent tensor (a head it lacks: from_pretrained below).
        return None

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any):
        """``PreTrainedModel.from_pretrained``, then the derived tables (rotary, sinusoidal:
        non-persistent buffers, not in the file; the loader leaves placeholders) rebuilt, and
        a task head the folder lacks initialised as :class:`TaskHead` does."""
        model, info = super().from_pretrained(*args, **{**kwargs, "output_loading_info": True})
        for module in model.modules():
            if isinstance(module, (RotaryEmbedding, SinusoidalPositions)):
                module.rebuild_tables()
        head = getattr(model, "head", None)
        if isinstance(head, TaskHead) and any(k.startswith("head.") for k in info["missing_keys"]):
            # a new head on a language model's folder (num_labels=...): transformers leaves
            # tensors it did not load uninitialised (it expects a meta-device build)
            for layer in head.mlp:
                if isinstance(layer, torch.nn.Linear):
                    layer.reset_parameters()
        return (model, info) if kwargs.get("output_loading_info") else model


class _LMBase(PerformerPreTrainedModel):
    def __init__(self, config: PerformerConfig) -> None:
        super().__init__(config)
        self.performer = PerformerLM(config.model_config())
        self.post_init()

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.performer.token_embedding


class PerformerForMaskedLM(_LMBase):
    """Masked LM: ``labels`` [B, L] with ``-100`` on unscored positions."""

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> MaskedLMOutput:
        logits = self.performer(input_ids, _mask(input_ids, attention_mask))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        return MaskedLMOutput(loss=loss, logits=logits)


class PerformerForCausalLM(_LMBase):
    """Causal LM: ``labels`` are the inputs (shifted here, as in ``transformers``)."""

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutput:
        logits = self.performer(input_ids, _mask(input_ids, attention_mask))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE
            )
        return CausalLMOutput(loss=loss, logits=logits)


class _HeadBase(PerformerPreTrainedModel):
    level = "protein"

    def __init__(self, config: PerformerConfig) -> None:
        super().__init__(config)
        if not config.head:
            # a language model's folder: a new head, as transformers' num_labels /
            # problem_type ask (from_pretrained(lm_folder, num_labels=3)); recorded in the
            # config, so save_pretrained writes a folder the project's loaders read
            regression = config.problem_type == "regression"
            config.head = HeadConfig(
                level=self.level,
                problem="regression" if regression else "classification",
                num_labels=1 if regression else config.num_labels,
                label_names=[] if regression else list(config.id2label.values()),
            ).to_dict()
        head_cfg = config.head_config()
        self.num_labels = head_cfg.num_labels
        self.performer = PerformerLM(config.model_config())
        self.head = TaskHead(self.performer.cfg.d_model, head_cfg)
        self.post_init()

    def _logits(self, input_ids, attention_mask) -> torch.Tensor:
        mask = _mask(input_ids, attention_mask)
        return self.head(final_hidden(self.performer, input_ids, mask), input_ids, mask)


class PerformerForSequenceClassification(_HeadBase):
    """Per-protein head: logits [B, C] (regression: [B, 1])."""

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        logits = self._logits(input_ids, attention_mask)
        loss = None
        if labels is not None:
            if self.head.cfg.problem == "regression":
                loss = F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
            else:
                loss = F.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class PerformerForTokenClassification(_HeadBase):
    """Per-residue head: logits [B, L, C]; ``labels`` -100 at <cls>, <eos> and padding."""

    level = "residue"

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> TokenClassifierOutput:
        logits = self._logits(input_ids, attention_mask)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        return TokenClassifierOutput(loss=loss, logits=logits)


def register() -> None:
    """Make the Auto classes know ``model_type=protein_performer`` (idempotent)."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    pairs = (
        (AutoModelForMaskedLM, PerformerForMaskedLM),
        (AutoModelForCausalLM, PerformerForCausalLM),
        (AutoModelForSequenceClassification, PerformerForSequenceClassification),
        (AutoModelForTokenClassification, PerformerForTokenClassification),
    )
    AutoConfig.register(MODEL_TYPE, PerformerConfig, exist_ok=True)
    for auto, cls in pairs:
        auto.register(PerformerConfig, cls, exist_ok=True)
