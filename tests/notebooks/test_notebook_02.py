"""notebooks/02_attention_vs_blosum.ipynb runs end to end with a tiny model (nbclient)."""

from __future__ import annotations

from nbrun import NOTEBOOKS, TINY_TRAIN_OVERRIDES, assert_outputs_stripped, inline_images, run_notebook

NOTEBOOK = NOTEBOOKS / "02_attention_vs_blosum.ipynb"


def test_outputs_are_stripped():
    assert_outputs_stripped(NOTEBOOK)


def test_notebook_runs(tmp_path):
    out = tmp_path / "out"
    params = (f"CKPT = None\nTRAIN_OVERRIDES = {TINY_TRAIN_OVERRIDES!r}\n"
              "N_PROTEINS = 16\nTHRESHOLD = 0.0\nMIN_TOTAL_WEIGHT = 0.0\nN_PERMUTATIONS = 20\n"
              f"OUT_DIR = {str(out)!r}\n")
    nb = run_notebook(NOTEBOOK, params, tmp_path)
    for name in ("blosum_comparison.json", "per_head.csv", "vig_similarity.csv", "heatmaps.png",
                 "scatter.pdf", "layer_head_grid.png"):
        assert (out / name).stat().st_size > 0, name
    assert inline_images(nb) >= 4, "the figures should display inline"
