"""The language-model objective (masked ``mlm`` or causal ``clm``) and what it implies.

One typed value, built once where a run starts (``cli/config.py``, a checkpoint's
hyper-parameters), answers every question the rest of the code asks about the objective:
whether the model is causal (:attr:`Objective.causal`), which tokens are scored and how the
inputs are corrupted (:meth:`Objective.inputs_and_targets`). Training, evaluation and the
checkpoint loader import it; none of them compares the name against a list of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Generator, Tensor

from protein_performer.masking import DEFAULT_MASK_PROB, causal_targets, mask_tokens

OBJECTIVE_NAMES = ("clm", "mlm")


@dataclass(frozen=True)
class Objective:
    """``name``: ``mlm`` (bidirectional masked LM) or ``clm`` (causal next-residue LM);
    ``mask_prob``: the share of residues an ``mlm`` step selects (carried, unused, by ``clm``).
    """

    name: str = "mlm"
    mask_prob: float = DEFAULT_MASK_PROB

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVE_NAMES:
            raise ValueError(
                f"objective.name must be one of {list(OBJECTIVE_NAMES)}, got {self.name!r}"
            )
        prob = float(self.mask_prob)
        if self.name == "mlm" and not 0.0 < prob < 1.0:
            raise ValueError(f"objective.mask_prob must be in (0, 1), got {self.mask_prob}")
        object.__setattr__(self, "mask_prob", prob)

    @property
    def causal(self) -> bool:
        """Whether the model (and every attention layer in it) may only look left."""
        return self.name == "clm"

    def __str__(self) -> str:
        return self.name

    def inputs_and_targets(
        self,
        tokens: Tensor,
        mask: Tensor | None,
        generator: Generator | None = None,
        corrupt: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """The model input and the targets (``IGNORE`` = unscored) of a batch ``[B, L]``.

        mlm: :func:`~protein_performer.masking.mask_tokens` (``corrupt``: BERT's 80/10/10
        rule for training; without it every selected residue becomes ``<mask>``); clm: the
        tokens themselves and :func:`~protein_performer.masking.causal_targets`.
        """
        if self.causal:
            return tokens, causal_targets(tokens, mask)
        return mask_tokens(tokens, mask, prob=self.mask_prob, generator=generator, corrupt=corrupt)

    # A checkpoint's hyper-parameters hold the objective as two plain keys (the format every
    # checkpoint written so far uses): ``objective`` (the name) and ``mask_prob``.
    def to_hparams(self) -> dict[str, Any]:
        return {"objective": self.name, "mask_prob": self.mask_prob}

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> Objective:
        return cls(str(hparams["objective"]), hparams.get("mask_prob", DEFAULT_MASK_PROB))
