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

import json
from pathlib import Path
from typing import Any

import torch

from protein_performer.analysis.run import analyze_model
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


def analyze_with_control(
    model: PerformerLM, source, out_dir: str | Path, options, *, figures: bool = True, **kwargs: Any
):
    """:func:`~protein_performer.analysis.run.analyze_model` of ``model`` into ``out_dir`` and
    of its random-init twin into ``out_dir/random_init``; the trained model's
    ``blosum_comparison.json`` gains a ``control`` block (:func:`control_summary` per mode) and,
    with figures, ``with_control.png`` shows both beside the reference.

    Returns (trained result, control result, {mode: summary}, files of the trained analysis).
    """
    # matplotlib loads only when figures are drawn
    from protein_performer.analysis.figures import plot_with_control, save

    out = Path(out_dir)
    trained, files = analyze_model(model, source, out, options, figures=figures, **kwargs)
    control, _ = analyze_model(
        random_init_like(model, options.seed), source, out / "random_init", options, figures=figures
    )
    ref = options.reference
    summary = {
        mode: control_summary(trained.overall[mode][ref], control.overall[mode][ref])
        for mode in ("vig", "direct")
    }
    path = Path(files["blosum_comparison"])
    data = json.loads(path.read_text())
    data["control"] = {
        "kind": "random_init",
        "seed": options.seed,
        "dir": str(out / "random_init"),
        **summary,
    }
    if figures:
        files["with_control"] = save(plot_with_control(trained, control), out / "with_control")
        data["files"]["with_control"] = files["with_control"]
    path.write_text(json.dumps(data, indent=2) + "\n")
    return trained, control, summary, files
