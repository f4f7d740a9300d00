"""Orchestration: streaming a model over proteins, summaries, output files, figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from analysis_toys import ToyAttentionModel  # noqa: E402
from common import tiny_lm  # noqa: E402

from protein_performer.analysis.aggregate import AttentionAggregates  # noqa: E402
from protein_performer.analysis.collect import aggregate_attention, protein_attention  # noqa: E402
from protein_performer.analysis.figures import write_figures  # noqa: E402
from protein_performer.analysis.options import AnalysisInputError, AnalysisOptions  # noqa: E402
from protein_performer.analysis.outputs import write_outputs  # noqa: E402
from protein_performer.analysis.substitution import UnknownMatrixError  # noqa: E402
from protein_performer.analysis.summary import summarise  # noqa: E402
from protein_performer.data.alphabet import ALPHABET  # noqa: E402
from protein_performer.data.source import InMemoryProteins  # noqa: E402


def _source(n: int = 12, seed: int = 0) -> InMemoryProteins:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 90, size=n)
    first = int(ALPHABET.standard_idx[0])
    seqs = [rng.integers(first, first + 20, size=l).astype(np.uint8) for l in lengths]
    seqs[0][2] = ALPHABET.index("X")  # a rare residue: excluded like the special tokens
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return InMemoryProteins(np.concatenate(seqs), offsets, [f"p{i}" for i in range(n)])


def test_streaming_equals_one_protein_at_a_time():
    """Batching (padding, sorting, cropping) must not change the sums."""
    model = ToyAttentionModel(max_length=64).double()
    src = _source()
    opts = AnalysisOptions(
        n_proteins=10,
        threshold=0.05,
        progress=False,
        device="cpu",
        n_permutations=0,
        attention_budget=20000,
    )
    agg, counts = aggregate_attention(model, src, opts)
    assert counts["n_proteins"] == 10 and agg.n_proteins == 10
    assert counts["n_cropped"] == int((src.lengths[:10] + 2 > 64).sum()) > 0
    ref = AttentionAggregates(2, 3, 0.05)
    for i in range(10):
        toks = ALPHABET.wrap(src[i], 64)
        t = torch.from_numpy(toks)[None]
        m = torch.ones_like(t, dtype=torch.bool)
        maps = model.run(t, m, attention_layers=(0, 1)).attention
        ref.update([maps[0], maps[1]], t, m)
    np.testing.assert_allclose(agg.target_mass, ref.target_mass, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(agg.pair_mass, ref.pair_mass, rtol=1e-9, atol=1e-12)
    assert (agg.residue_counts == ref.residue_counts).all()


def test_summary_outputs_and_figures(tmp_path):
    model = ToyAttentionModel(n_layers=2, n_heads=3)
    opts = AnalysisOptions(
        n_proteins=12,
        threshold=0.1,
        min_total_weight=1.0,
        progress=False,
        device="cpu",
        n_permutations=50,
        matrices=["BLOSUM62", "PAM250"],
    )
    agg, counts = aggregate_attention(model, _source(), opts)
    result = summarise(agg, opts, counts)
    assert result.vig.shape == (20, 20) and result.head_direct.shape == (6, 20, 20)
    assert set(result.overall["vig"]) == {"BLOSUM62", "PAM250"}
    files = write_outputs(result, tmp_path, agg)
    data = json.loads((tmp_path / "blosum_comparison.json").read_text())
    assert data["reference"] == "BLOSUM62" and data["heads"]["total"] == 6
    assert data["n_proteins"] == 12
    assert set(data["overall"]["vig"]["BLOSUM62"]) >= {
        "pearson",
        "spearman",
        "permutation_p",
        "pearson_diag",
        "n_pairs",
    }
    per_head = pd.read_csv(files["per_head"])
    assert len(per_head) == 6 and {"layer", "head", "direct_pearson", "share_W"} <= set(per_head)
    vig = pd.read_csv(files["vig_similarity"], index_col=0)
    assert vig.shape == (20, 20) and list(vig.columns)[:3] == ["A", "C", "D"]
    back = AttentionAggregates.from_dict(dict(np.load(files["aggregates"])))
    np.testing.assert_allclose(back.pair_mass, agg.pair_mass)

    amap = protein_attention(model, _source()[1], layer=1, head=2, device="cpu")
    figs = write_figures(result, tmp_path, attention_map=(*amap, 1, 2, "p1"))
    for paths in figs.values():
        for p in paths:
            assert Path(p).stat().st_size > 0
    assert {Path(p).name for p in figs["heatmaps"]} == {"heatmaps.png", "heatmaps.pdf"}
    with pytest.raises(AnalysisInputError, match="out of range"):
        protein_attention(model, _source()[1], layer=5, head=0, device="cpu")


def test_bad_options():
    with pytest.raises(UnknownMatrixError, match="BLOSUM99"):
        AnalysisOptions(reference="BLOSUM99")
    with pytest.raises(AnalysisInputError, match="threshold"):
        AnalysisOptions(threshold=1.5)
    with pytest.raises(AnalysisInputError, match="n_proteins"):
        AnalysisOptions(n_proteins=0)


@pytest.mark.parametrize("kind", ["exact", "favor_relu", "aft_simple"])
def test_real_model_kinds_give_finite_results(kind, tmp_path):
    """PerformerLM's attention_maps (implicit matrices for FAVOR+ / AFT) feed the analysis;
    an untrained model's attention is unrelated to BLOSUM62 (Vig et al.: r about 0)."""
    model = tiny_lm(kind, attention={"nb_features": 256}, max_length=48)
    opts = AnalysisOptions(
        n_proteins=10,
        threshold=0.0,
        min_total_weight=0.0,
        device="cpu",
        progress=False,
        n_permutations=20,
        matrices=["BLOSUM62"],
    )
    agg, counts = aggregate_attention(model, _source(), opts)
    # rows sum to 1 over real tokens: the kept mass is at most one unit per standard query
    assert (agg.total_weight <= agg.residue_counts.sum() + 1e-6).all()
    assert (agg.total_weight > 0).all()
    result = summarise(agg, opts, counts)
    assert np.isfinite(result.r) and abs(result.r) < 0.6
