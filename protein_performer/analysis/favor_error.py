"""How well FAVOR+ approximates softmax attention on a trained model's own queries and keys.

The diagnostic of Choromanski et al. (2021, sec. 4.1 / Fig. 3), on real activations: capture
each layer's q, k, v (after rotary) on a few proteins, then compare, per layer and head,

    exact:  A = softmax(q k^T / sqrt(d)) (masked; causal when the model is)
    FAVOR+: A_m = the matrix implied by m positive random features (orthogonal or i.i.d.)

by the mean relative Frobenius error of the attention *output* ``||A_m v - A v|| / ||A v||``
and the mean absolute error of the matrix entries, over several feature draws. The q and k are
the model's, whatever its attention kind: for an exact or FAVOR+ model this is the error the
model would see if it switched to (or from) the estimator; for other kinds it characterises
the kernel on that model's activations.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from protein_performer.attention.favor.layer import favor_attention_matrix
from protein_performer.attention.favor.projection import draw_projection, seeded_generator
from protein_performer.data.alphabet import ALPHABET, tokens_to_letters
from protein_performer.data.batching import BatchConverter
from protein_performer.model.lm import PerformerLM


def capture_qkv(model: PerformerLM, tokens: Tensor, mask: Tensor) -> list[tuple[Tensor, ...]]:
    """(q, k, v) [B, H, L, Dh] of every block's attention, as the model computes them
    (:meth:`PerformerLM.run`, no gradients)."""
    layers = range(len(model.blocks))
    with torch.no_grad():
        out = model.run(tokens, mask, logits=False, qkv_layers=layers)
    return [out.qkv[i] for i in layers]


def exact_matrix(q: Tensor, k: Tensor, mask: Tensor, causal: bool) -> Tensor:
    """softmax(q k^T / sqrt(d)) [B, H, L, L] in float64, padded keys (and the future) masked."""
    q, k = q.double(), k.double()
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    allowed = mask[:, None, None, :]
    if causal:
        n = q.shape[2]
        allowed = allowed & torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


def approximation_errors(
    qkv: Sequence[tuple[Tensor, Tensor, Tensor]],
    mask: Tensor,
    causal: bool,
    nb_features: Sequence[int] = (16, 32, 64, 128, 256, 512),
    feature_types: Sequence[str] = ("orthogonal", "iid"),
    n_draws: int = 4,
    seed: int = 0,
):
    """pandas DataFrame: one row per (layer, feature_type, m, draw) with ``output_rel_error``
    and ``matrix_abs_error`` (means over heads and real query rows)."""
    import pandas as pd

    rows = []
    rowmask = mask[:, None, :, None].double()  # real queries only
    n_rows = float(rowmask.sum()) * qkv[0][0].shape[1]
    for layer, (q, k, v) in enumerate(qkv):
        exact = exact_matrix(q, k, mask, causal)
        out = exact @ v.double()
        out_norm = (out * rowmask).norm(dim=-1)  # [B, H, L]
        for ftype in feature_types:
            for m in nb_features:
                for draw in range(n_draws):
                    w = draw_projection(
                        m,
                        q.shape[-1],
                        feature_type=ftype,
                        generator=seeded_generator(seed, layer, m * 1000 + draw),
                    )
                    approx = favor_attention_matrix(
                        q.double(),
                        k.double(),
                        w.double(),
                        kernel="softmax",
                        causal=causal,
                        mask=mask,
                        eps=0.0,
                    )
                    diff = (approx @ v.double() - out) * rowmask
                    rel = diff.norm(dim=-1) / out_norm.clamp_min(1e-12)
                    rows.append(
                        {
                            "layer": layer,
                            "feature_type": ftype,
                            "nb_features": m,
                            "draw": draw,
                            "output_rel_error": float(rel.sum() / n_rows),
                            "matrix_abs_error": float(
                                ((approx - exact).abs() * rowmask).sum()
                                / (n_rows * mask.sum(-1).double().mean())
                            ),
                        }
                    )
    return pd.DataFrame(rows)


def protein_batch(sequences: Sequence[str], max_length: int) -> tuple[Tensor, Tensor]:
    """<cls> + residues + <eos>, cropped to ``max_length`` and right-padded: tokens, mask [B, L]."""
    batch = BatchConverter()([ALPHABET.wrap(ALPHABET.encode(s), max_length) for s in sequences])
    return batch.tokens, batch.mask


def errors_on_source(
    model: torch.nn.Module,
    source,
    n_proteins: int = 8,
    nb_features: Sequence[int] = (16, 32, 64, 128, 256, 512),
    seed: int = 0,
):
    """:func:`approximation_errors` on the model's q, k of the first ``n_proteins`` of
    ``source`` (a ProteinSource), in float64 on a copy (``model`` is left as it is)."""
    n = min(n_proteins, len(source))
    seqs = [tokens_to_letters(source[i]).decode() for i in range(n)]
    tokens, mask = protein_batch(seqs, model.cfg.max_length)
    double = copy.deepcopy(model).double()
    qkv = capture_qkv(double, tokens, mask)
    return approximation_errors(qkv, mask, model.cfg.causal, nb_features, seed=seed)


def plot_errors(table, path_stem, title: str = "FAVOR+ vs exact softmax on the model's q, k"):
    """Error of the attention output vs nb_features (log-log), one line per feature type,
    mean over layers and draws with the draws' spread; PNG + PDF."""
    # matplotlib loads only when a figure is drawn
    import matplotlib.pyplot as plt

    from protein_performer.analysis.figures import save_closed

    fig, ax = plt.subplots(figsize=(5.5, 4))
    per_draw = table.groupby(["feature_type", "nb_features", "draw"])["output_rel_error"].mean()
    stats = per_draw.groupby(["feature_type", "nb_features"]).agg(["mean", "std"]).reset_index()
    for ftype, part in stats.groupby("feature_type"):
        ax.errorbar(
            part["nb_features"],
            part["mean"],
            yerr=part["std"].fillna(0),
            marker="o",
            capsize=3,
            label=ftype,
        )
    m = np.array(sorted(table["nb_features"].unique()), dtype=float)
    first = stats[stats["nb_features"] == m[0]]["mean"].max()
    ax.plot(m, first * np.sqrt(m[0] / m), "k:", lw=1, label=r"$\propto m^{-1/2}$")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("random features m")
    ax.set_ylabel("relative error of attention output")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return save_closed(fig, path_stem)
