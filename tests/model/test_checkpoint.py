"""load_model: a Lightning checkpoint of a tiny model reloads to identical logits.

No Lightning is needed to reload it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from common import tiny_config

from protein_performer.data.alphabet import ALPHABET
from protein_performer.objective import Objective
from protein_performer.runner import CheckpointError, load_model

KIND = "favor_relu"
FIXTURES = Path(__file__).parent / "fixtures"


pytestmark = pytest.mark.usefixtures("one_thread")


class _Batches(torch.utils.data.Dataset):
    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


def _batch(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(6, 26, (3, 14), generator=g)
    tokens[:, 0] = ALPHABET.cls_idx
    tokens[:, -1] = ALPHABET.eos_idx
    tokens[2, 9:] = ALPHABET.pad_idx
    return {"tokens": tokens, "mask": tokens != ALPHABET.pad_idx}


@pytest.mark.parametrize("objective", ["mlm", "clm"])
def test_round_trip_through_a_trainer_checkpoint(objective, tmp_path):
    import pytorch_lightning as pl

    from protein_performer.training.module import ProteinLMModule

    torch.manual_seed(0)
    freqs = np.linspace(0, 1, len(ALPHABET)).tolist()
    obj = Objective(objective)
    cfg = tiny_config(
        KIND,
        attention={"redraw_interval": 2},
        d_model=32,
        d_ff=64,
        dropout=0.1,
        max_length=32,
        position="rotary" if objective == "clm" else "learned",
        causal=obj.causal,
    )
    module = ProteinLMModule(cfg, obj, residue_frequencies=freqs)
    loader = torch.utils.data.DataLoader(_Batches([_batch(i) for i in range(3)]), batch_size=None)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, train_dataloaders=loader)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    loaded = load_model(path)
    assert not loaded.model.training
    assert loaded.objective == obj and loaded.objective.name == objective
    assert loaded.model_cfg == module.model_cfg and loaded.model_cfg.causal == (objective == "clm")
    np.testing.assert_allclose(loaded.residue_frequencies, freqs)
    b = _batch(7)
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.model(b["tokens"], b["mask"]),
            module.model(b["tokens"], b["mask"]),
            atol=0,
            rtol=0,
        )
    # and the module's own loader rebuilds the module from the plain hyper-parameters
    again = ProteinLMModule.load_from_checkpoint(path)
    assert again.objective == obj and again.model_cfg == module.model_cfg
    assert again.feature_redraws == module.feature_redraws > 0
    again.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            again.model(b["tokens"], b["mask"]),
            module.model(b["tokens"], b["mask"]),
            atol=0,
            rtol=0,
        )


@pytest.mark.parametrize("objective,mask_prob", [("clm", 0.15), ("mlm", 0.2)])
def test_checkpoints_of_the_earlier_format_still_load(objective, mask_prob):
    """fixtures/v0_*.ckpt were written by ProteinLMModule at commit 5f187a9 (the objective a
    bare string, ``mask_prob`` a separate argument, attention causal/max_length copied in by
    the model), trained 3 steps; v0_*_logits.npy: that code's logits on ``_batch(7)``."""
    from protein_performer.training.module import ProteinLMModule

    path = FIXTURES / f"v0_{objective}.ckpt"
    want = torch.from_numpy(np.load(FIXTURES / f"v0_{objective}_logits.npy"))
    b = _batch(7)
    loaded = load_model(path)
    assert loaded.objective == Objective(objective, mask_prob)
    assert loaded.model_cfg.causal == loaded.model_cfg.attention.causal == (objective == "clm")
    assert loaded.model_cfg.attention.nb_features == 8 and loaded.model_cfg.max_length == 32
    with torch.no_grad():
        got = loaded.model(b["tokens"], b["mask"])
    # The logits were stored on another CPU: float32 sums vectorised differently (AVX-512 or
    # not) round differently, ~1e-7; equal up to that there, bit for bit on one machine below.
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    module = ProteinLMModule.load_from_checkpoint(path)
    assert module.objective == loaded.objective and module.seed == 7
    assert module.model_cfg == loaded.model_cfg and module.optim_cfg.lr == 1e-3
    assert module.feature_redraws == 1  # redraw_interval 2, 3 steps: one redraw at step 2
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(module.model(b["tokens"], b["mask"]), got, atol=0, rtol=0)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.ckpt.*ckpt_path="):
        load_model(tmp_path / "nope.ckpt")
    foreign = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a protein-performer checkpoint"):
        load_model(foreign)
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_model(text)
