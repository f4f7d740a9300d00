"""``import protein_performer.hf``: register the ``transformers`` Auto classes.

    import protein_performer.hf
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification
    lm = AutoModelForMaskedLM.from_pretrained("exported/", local_files_only=True)

A module of its own because importing ``transformers`` takes seconds; ``import
protein_performer`` stays cheap and registers only when ``transformers`` is already imported.
"""

from protein_performer.finetune.hf_models import (
    PerformerConfig,
    PerformerForCausalLM,
    PerformerForMaskedLM,
    PerformerForSequenceClassification,
    PerformerForTokenClassification,
    register,
)

register()

__all__ = [
    "PerformerConfig",
    "PerformerForCausalLM",
    "PerformerForMaskedLM",
    "PerformerForSequenceClassification",
    "PerformerForTokenClassification",
]
