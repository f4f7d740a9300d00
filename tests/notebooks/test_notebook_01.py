"""notebooks/01_train_and_perplexity.ipynb runs end to end with a tiny model (nbclient)."""

from __future__ import annotations

import json

from nbrun import NOTEBOOKS, TINY_TRAIN_OVERRIDES, assert_outputs_stripped, inline_images, run_notebook

NOTEBOOK = NOTEBOOKS / "01_train_and_perplexity.ipynb"


def test_outputs_are_stripped():
    assert_outputs_stripped(NOTEBOOK)


def test_notebook_runs(tmp_path):
    out = tmp_path / "out"
    params = (f"CKPT = None\nTRAIN_OVERRIDES = {TINY_TRAIN_OVERRIDES!r}\n"
              f"MAX_PROTEINS = 12\nN_MASKINGS = 2\nOUT_DIR = {str(out)!r}\n")
    nb = run_notebook(NOTEBOOK, params, tmp_path)
    metrics = json.loads((out / "metrics.json").read_text())
    valid = metrics["files"]["valid"]
    assert valid["n_sequences"] == 12 and valid["objective"] == "mlm"
    assert (out / "per_protein" / "valid.csv").stat().st_size > 0
    assert (out / "train" / "checkpoints" / "last.ckpt").is_file()
    assert inline_images(nb) >= 2, "the figures should display inline"
