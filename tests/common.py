"""Paths and run settings shared by the tests (imported as ``from common import ...``).

``tests/`` is on ``sys.path`` (tests/conftest.py puts it there), so every test module can
import this file; the fixtures live in conftest.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from protein_performer.attention import AttentionConfig
from protein_performer.model import ModelConfig, PerformerLM

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "data" / "sample"
SAMPLE_TRAIN = SAMPLE_DIR / "train.fasta.gz"
SAMPLE_VALID = SAMPLE_DIR / "valid.fasta.gz"
# The development corpora beside the checkout; tests that read them skip when absent.
SHARED_DATA = REPO.parent / "shared" / "data"
SWISSPROT = SHARED_DATA / "swissprot2014"

# A model of a few thousand parameters trained for two steps on CPU, two validation batches,
# CSV logging, plain progress lines, the small 5,000-protein corpus (data=sample's default is
# the 50,000-protein data/sample50k, 10x slower to load): the settings every end-to-end test
# starts from. A test appends its own overrides (the last value of a key wins).
TINY_RUN = [
    f"data.train=[{SAMPLE_TRAIN}]",
    f"data.valid=[{SAMPLE_VALID}]",
    "model.d_model=32",
    "model.n_layers=1",
    "model.n_heads=2",
    "model.d_ff=64",
    "model.max_length=64",
    "model.dropout=0.0",
    "data.max_length=64",
    "data.batch_size=4",
    "data.num_workers=0",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.precision=32-true",
    "trainer.strategy=auto",
    "optim.warmup_steps=1",
    "logger=csv",
    "callbacks.progress.mode=lines",
]
# The embedded sample as training and validation data, no test sets.
SAMPLE_DATA = [
    f"data.train=[{SAMPLE_TRAIN}]",
    f"data.valid=[{SAMPLE_VALID}]",
    "data.test=null",
    "data.test_ood=null",
    "data.cluster_tsv=null",
]


def assert_plausible_perplexity(value: object) -> None:
    """A run's ``valid/perplexity`` from metrics.json: a real number in (1, 100). A model of a
    few thousand parameters after a few steps sits near the uniform 25 residues; missing,
    NaN (written as null) or infinite values fail."""
    assert isinstance(value, float) and 1.0 < value < 100.0, value


def run_train_cli(args: list[str], cwd: Path, timeout: int = 300) -> str:
    """``python -m protein_performer.train ARGS`` in ``cwd`` (one thread, wandb off); asserts
    exit status 0 and returns stdout + stderr."""
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "protein_performer.train", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"},
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    return out


def tiny_config(
    kind: str = "exact", *, attention: dict[str, Any] | None = None, **model: Any
) -> ModelConfig:
    """The tests' tiny model: d_model 16, 2 layers, 2 heads, d_ff 32, no dropout, length 64,
    bidirectional, ``kind`` attention with 16 random features. ``model`` overrides
    ModelConfig fields, ``attention`` AttentionConfig fields."""
    values: dict[str, Any] = dict(
        d_model=16, n_layers=2, n_heads=2, d_ff=32, dropout=0.0, max_length=64
    )
    values.update(model)
    layer = AttentionConfig(**{"kind": kind, "nb_features": 16, **(attention or {})})
    return ModelConfig(**values, attention=layer)


def tiny_lm(
    kind: str = "exact",
    *,
    seed: int | None = 0,
    attention: dict[str, Any] | None = None,
    **model: Any,
) -> PerformerLM:
    """A :func:`tiny_config` PerformerLM in eval mode, its weights drawn after
    ``torch.manual_seed(seed)`` (None: from the current random state)."""
    if seed is not None:
        torch.manual_seed(seed)
    return PerformerLM(tiny_config(kind, attention=attention, **model)).eval()


def make_checkpoint(
    path: Path,
    objective: str,
    frequencies: list[float] | None,
    position: str = "learned",
    attention: str = "exact",
    redraw_interval: int = 1000,
) -> Path:
    """A tiny ProteinLMModule trained 2 steps through a real pl.Trainer, then saved
    (``redraw_interval=1``: FAVOR+ projections redrawn, not the step-0 draw)."""
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader

    from protein_performer.objective import Objective
    from protein_performer.training.module import ProteinLMModule

    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(2):
        tok = torch.randint(6, 26, (4, 20), generator=g)
        tok[:, 0], tok[:, -1] = 2, 3
        batches.append({"tokens": tok, "mask": torch.ones_like(tok, dtype=torch.bool)})
    obj = Objective(objective)
    cfg = tiny_config(
        attention,
        attention={"redraw_interval": redraw_interval},
        n_layers=1,
        causal=obj.causal,
        position=position,
    )
    module = ProteinLMModule(cfg, obj, residue_frequencies=frequencies)
    trainer = pl.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(batches, batch_size=None))
    trainer.save_checkpoint(path)
    return path
