"""Task heads on a :class:`PerformerLM`: per-protein (pooled) and per-residue (token) heads.

    head = HeadConfig(level="protein", problem="classification", num_labels=3)
    net = PerformerClassifier(lm, head)          # tokens [B, L], mask [B, L] -> logits
    net(tokens, mask)                            # [B, C] (protein) or [B, L, C] (residue)

A protein's representation is the mean of the final hidden states over its residues
(``pooling=mean``; ``<cls>``, ``<eos>`` and padding excluded) or the ``<cls>`` state
(``pooling=cls``); an MLP (``hidden`` units, GELU, dropout; ``hidden=0``: one linear layer)
maps it to ``num_labels`` outputs (1 for regression). A residue head applies the same MLP to
every position; labels at ``<cls>``, ``<eos>`` and padding are ``IGNORE``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from protein_performer.data.alphabet import ALPHABET
from protein_performer.fields import check_fields
from protein_performer.model.lm import PerformerLM

LEVELS = ("protein", "residue")
PROBLEMS = ("classification", "regression")
POOLINGS = ("mean", "cls")


@dataclass
class HeadConfig:
    """What the head predicts and its shape; stored in an exported folder's config.json."""

    level: str = "protein"  # protein (one label per sequence) | residue (one per residue)
    problem: str = "classification"  # classification | regression
    num_labels: int = 2  # classes (classification) or 1 (regression)
    pooling: str = "mean"  # protein level: mean over residues | cls (the <cls> state)
    hidden: int = 128  # MLP hidden units; 0 = a single linear layer
    dropout: float = 0.1
    label_names: list[str] = field(default_factory=list)  # class names, in index order

    def __post_init__(self) -> None:
        for name, allowed in (("level", LEVELS), ("problem", PROBLEMS), ("pooling", POOLINGS)):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"head.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}"
                )
        if self.problem == "regression" and self.num_labels != 1:
            raise ValueError(f"head.num_labels must be 1 for regression, got {self.num_labels}")
        if self.problem == "classification" and self.num_labels < 2:
            raise ValueError(
                f"head.num_labels must be >= 2 for classification, got {self.num_labels}"
            )
        if self.level == "residue" and self.problem != "classification":
            raise ValueError("head.level=residue supports problem=classification only")
        if self.hidden < 0:
            raise ValueError(f"head.hidden must be >= 0, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"head.dropout must be in [0, 1), got {self.dropout}")
        self.label_names = [str(n) for n in self.label_names]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HeadConfig:
        check_fields(cls, "head", values)
        return cls(**values)


def residue_mask(tokens: Tensor, mask: Tensor | None = None) -> Tensor:
    """Bool [B, L]: True on residues (not ``<cls>``, ``<eos>``, padding or other specials)."""
    out = tokens >= ALPHABET.first_residue_idx
    return out if mask is None else out & mask


class TaskHead(nn.Module):
    """hidden states [B, L, D] (+ tokens, mask) -> logits [B, C] or [B, L, C]."""

    def __init__(self, d_model: int, cfg: HeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.hidden:
            self.mlp = nn.Sequential(
                nn.Dropout(cfg.dropout),
                nn.Linear(d_model, cfg.hidden),
                nn.GELU(),
                nn.Dropout(cfg.dropout),
                nn.Linear(cfg.hidden, cfg.num_labels),
            )
        else:
            self.mlp = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(d_model, cfg.num_labels))

    def pool(self, hidden: Tensor, tokens: Tensor, mask: Tensor | None) -> Tensor:
        """One vector per protein [B, D]."""
        if self.cfg.pooling == "cls":
            return hidden[:, 0]
        keep = residue_mask(tokens, mask).unsqueeze(-1).to(hidden.dtype)  # [B, L, 1]
        return (hidden * keep).sum(1) / keep.sum(1).clamp_min(1.0)

    def forward(self, hidden: Tensor, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.cfg.level == "residue":
            return self.mlp(hidden)  # [B, L, C]
        return self.mlp(self.pool(hidden, tokens, mask))  # [B, C]


def final_hidden(lm: PerformerLM, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
    """The representation the LM head reads [B, L, D] (final LayerNorm applied); gradients
    flow (:meth:`PerformerLM.run` leaves mode and gradients to the caller)."""
    return lm.run(tokens, mask, logits=False, hidden_layers=(-1,)).hidden[-1]


class PerformerClassifier(nn.Module):
    """A :class:`PerformerLM` backbone (``performer``) and a :class:`TaskHead` (``head``); the
    attribute names are the key prefixes of an exported folder."""

    def __init__(self, performer: PerformerLM, head: HeadConfig) -> None:
        super().__init__()
        self.performer = performer
        self.head = TaskHead(performer.cfg.d_model, head)

    @property
    def head_cfg(self) -> HeadConfig:
        return self.head.cfg

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.head(final_hidden(self.performer, tokens, mask), tokens, mask)

    @torch.no_grad()
    def predict(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Class probabilities (classification) or values (regression), eval mode."""
        was = self.training
        self.eval()
        try:
            out = self(tokens, mask)
        finally:
            self.train(was)
        if self.head_cfg.problem == "regression":
            return out.squeeze(-1)
        return out.softmax(-1)
