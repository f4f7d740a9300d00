"""The null for an attention-vs-substitution-matrix result: the same model at random init.

A correlation between attention statistics and BLOSUM62 only means the model *learned*
something when the same architecture, untrained, does not show it: residue frequencies,
the tied embeddings and the FAVOR+ features shape attention before any training. So every
analysis runs a second model with the trained model's config and fresh, seeded weights
(GPT-2 init, :class:`~protein_performer.model.lm.PerformerLM`) through the same pipeline,
and reports both, with the difference of the two correlations against the permutation null
of each (:func:`control_summary`).
"""

from __future__ import annotations

from typing import Any

import torch

from protein_performer.model.lm import PerformerLM


def random_init_like(model: PerformerLM, seed: int = 0) -> PerformerLM:
    """A fresh model with ``model``'s config (same kind, sizes, features policy), seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        control = PerformerLM(model.cfg)
    device = next(model.parameters()).device
    return control.to(device).eval()


def control_summary(trained: dict[str, Any], control: dict[str, Any]) -> dict[str, Any]:
    """Headline statistics of the trained model beside its random-init control.

    Both arguments are comparison statistics of :func:`analysis.substitution.compare_matrices`
    (``pearson``, ``spearman``, ``permutation_p``). ``beats_control``: the trained r is above
    the control's r and significant at 0.01 by its own permutation test.
    """
    t, c = trained.get("pearson"), control.get("pearson")
    p = trained.get("permutation_p")
    ok = t is not None and c is not None and p is not None and t == t and c == c
    return {
        "trained_pearson": t,
        "trained_permutation_p": p,
        "control_pearson": c,
        "control_permutation_p": control.get("permutation_p"),
        "difference": (t - c) if ok else None,
        "beats_control": bool(ok and t > c and p < 0.01),
    }
