"""notebooks/01_train_and_perplexity.ipynb runs end to end with a tiny model (nbclient)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "01_train_and_perplexity.ipynb"

TINY_PARAMETERS = '''
CKPT = None
TRAIN_OVERRIDES = [
    "attention=exact", "objective=mlm", "logger=csv", "model.d_model=32", "model.n_layers=1",
    "model.n_heads=2", "model.d_ff=64", "model.max_length=64", "data.max_length=64",
    "data.batch_size=4", "data.num_workers=0", "trainer.max_steps=2",
    "trainer.val_check_interval=2", "trainer.limit_val_batches=1", "trainer.accelerator=cpu",
    "trainer.devices=1", "trainer.precision=32-true", "trainer.strategy=auto",
    "optim.warmup_steps=1", "callbacks.progress.mode=lines", "test=false",
]
MAX_PROTEINS = 12
N_MASKINGS = 2
OUT_DIR = {out!r}
'''


def test_outputs_are_stripped():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "strip the outputs"


def test_notebook_runs(tmp_path):
    for module in ("nbclient", "ipykernel"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed (pip install -e .[test])")
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "the notebook needs one cell tagged 'parameters'"
    params[0].source = TINY_PARAMETERS.format(out=str(tmp_path / "out"))
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    valid = metrics["files"]["valid"]
    assert valid["n_sequences"] == 12 and valid["objective"] == "mlm"
    assert (out / "per_protein" / "valid.csv").stat().st_size > 0
    assert (out / "train" / "checkpoints" / "last.ckpt").is_file()
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs
                 if "image/png" in o.get("data", {}))
    assert images >= 2, "the figures should display inline"
