"""load_lm: a Lightning checkpoint of a tiny model reloads to identical logits, without Lightning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from protein_performer.data.alphabet import ALPHABET
from protein_performer.model.checkpoint import CheckpointError, load_lm

KIND = "favor_relu"


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

    from protein_performer.training import ProteinLMModule

    torch.manual_seed(0)
    freqs = np.linspace(0, 1, len(ALPHABET)).tolist()
    module = ProteinLMModule(
        {"d_model": 32, "n_layers": 2, "n_heads": 2, "d_ff": 64, "max_length": 32,
         "position": "rotary" if objective == "clm" else "learned",
         "attention": {"kind": KIND, "nb_features": 16, "redraw_interval": 2}},
        objective=objective, residue_frequencies=freqs)
    loader = torch.utils.data.DataLoader(_Batches([_batch(i) for i in range(3)]), batch_size=None)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=3, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, train_dataloaders=loader)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    loaded = load_lm(path)
    assert not loaded.model.training
    assert loaded.objective == objective
    assert loaded.model_cfg == module.model_cfg and loaded.model_cfg.causal == (objective == "clm")
    np.testing.assert_allclose(loaded.residue_frequencies, freqs)
    b = _batch(7)
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(b["tokens"], b["mask"]),
                                   module.model(b["tokens"], b["mask"]), atol=0, rtol=0)
    # and Lightning's own loader rebuilds the module from the plain hyper-parameters
    again = ProteinLMModule.load_from_checkpoint(path)
    assert again.objective == objective and again.model_cfg == module.model_cfg


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.ckpt.*ckpt_path="):
        load_lm(tmp_path / "nope.ckpt")
    foreign = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a protein-performer checkpoint"):
        load_lm(foreign)
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_lm(text)
