"""Execute a notebook with its 'parameters' cell replaced (nbclient), for the notebook tests."""

from __future__ import annotations

from pathlib import Path


from common import TINY_RUN

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

# A tiny model trained for 2 steps on the embedded sample: the notebook's code path, fast.
TINY_TRAIN_OVERRIDES = [
    *TINY_RUN, "attention=exact", "objective=mlm", "model.n_layers=2",
    "trainer.limit_val_batches=1", "test=false",
]


def assert_outputs_stripped(path: Path) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"strip the outputs of {path}"


def run_notebook(path: Path, parameters: str, workdir: Path):
    """Run ``path`` in ``workdir`` with its one 'parameters'-tagged cell set to ``parameters``."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "the notebook needs one cell tagged 'parameters'"
    params[0].source = parameters
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def inline_images(nb) -> int:
    """How many PNG outputs the executed notebook displays."""
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if "image/png" in o.get("data", {}))
