"""ProteinLMModule: overfitting a tiny batch, token-weighted perplexity, hyper-parameters."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from common import tiny_config

from protein_performer.data.alphabet import ALPHABET
from protein_performer.masking import IGNORE, causal_targets
from protein_performer.objective import Objective
from protein_performer.training import OptimConfig
from protein_performer.training.module import ProteinLMModule

KINDS = ["exact", "favor_softmax", "favor_relu"]
TINY = dict(d_model=32, n_layers=1, n_heads=2, d_ff=64, dropout=0.0, max_length=32)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_module(
    kind: str = "exact", objective: str = "mlm", optim: dict | None = None, **attention
) -> ProteinLMModule:
    """A one-layer module; ``attention`` overrides the layer's options."""
    obj = Objective(objective)
    layer = {"nb_features": 32, "chunk_size": 8, "redraw_interval": 0, **attention}
    cfg = tiny_config(kind, attention=layer, **TINY, causal=obj.causal)
    return ProteinLMModule(cfg, obj, optim=None if optim is None else OptimConfig(**optim))


def make_batch(rows: list[list[int]]) -> dict[str, torch.Tensor]:
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), ALPHABET.pad_idx, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r)
    return {"tokens": tokens, "mask": tokens != ALPHABET.pad_idx}


def protein(seed: int, n: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    res = torch.as_tensor(ALPHABET.standard_idx)[torch.randint(0, 20, (n,), generator=g)]
    return [ALPHABET.cls_idx, *res.tolist(), ALPHABET.eos_idx]


@pytest.mark.parametrize("objective", ["mlm", "clm"])
@pytest.mark.parametrize("kind", KINDS)
def test_overfits_a_tiny_batch(kind, objective):
    torch.manual_seed(0)
    module = tiny_module(
        kind, objective, optim={"lr": 1e-2, "weight_decay": 0.0, "warmup_steps": 0}
    )
    # clm: one protein (two different proteins share the prefix <cls>, so their first residue
    # would be unpredictable); mlm: two proteins, one fixed masking (memorisation)
    rows = [protein(1, 14)] if objective == "clm" else [protein(1, 14), protein(2, 10)]
    batch = make_batch(rows)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        out = module.compute_loss(batch, torch.Generator().manual_seed(0))
        first = out["loss"].item() if first is None else first
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        if out["loss"].item() < 0.05:
            break
    assert first > 2.0
    assert out["loss"].item() < 0.05, (kind, objective, first, out["loss"].item())


def test_typed_configs_agree_and_hparams_are_plain():
    clm = tiny_module("exact", "clm")
    assert clm.model.cfg.causal and clm.model.blocks[0].attn.causal
    mlm = tiny_module("exact", "mlm")
    assert not mlm.model.cfg.causal and not mlm.model.blocks[0].attn.causal
    hp = dict(clm.hparams)
    assert isinstance(hp["model"], dict) and isinstance(hp["model"]["attention"], dict)
    assert isinstance(hp["optim"], dict) and hp["objective"] == "clm" and hp["mask_prob"] == 0.15
    rebuilt = ProteinLMModule.from_hparams(hp)
    assert rebuilt.model_cfg == clm.model_cfg and rebuilt.optim_cfg == clm.optim_cfg
    assert rebuilt.objective == clm.objective and rebuilt.seed == clm.seed
    # the model's causality is the objective's: a disagreement fails, it is not rewritten
    bidirectional = tiny_config("exact", **TINY)
    with pytest.raises(ValueError, match=r"model.causal \(False\) disagrees with objective clm"):
        ProteinLMModule(bidirectional, Objective("clm"))
    with pytest.raises(TypeError, match="takes a typed config.*from_hparams"):
        ProteinLMModule(hp["model"], Objective("clm"))
    with pytest.raises(TypeError, match=r"ProteinLMModule\(objective=...\) takes a typed config"):
        ProteinLMModule(bidirectional, "mlm")
    with pytest.raises(ValueError, match=r"objective.name must be one of \['clm', 'mlm'\]"):
        Objective("bert")
    with pytest.raises(ValueError, match="optim: unknown field"):
        ProteinLMModule.from_hparams({**hp, "optim": {"learning_rate": 1.0}})


class _Batches(torch.utils.data.Dataset):
    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


def _loader(batches):
    return torch.utils.data.DataLoader(_Batches(batches), batch_size=None)


def _trainer(tmp_path, **kw):
    import pytorch_lightning as pl

    args = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    args.update(kw)
    return pl.Trainer(**args)


def test_valid_perplexity_is_token_weighted(tmp_path):
    torch.manual_seed(0)
    module = tiny_module("exact", "clm")
    # two batches with very different token counts: a mean of batch perplexities differs
    batches = [make_batch([protein(3, 25), protein(4, 5)]), make_batch([protein(5, 2)])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = _trainer(tmp_path).validate(module, dataloaders=_loader(batches), verbose=False)[
            0
        ]
    nll, count, correct, batch_ppl = 0.0, 0, 0, []
    module.eval()
    with torch.no_grad():
        for b in batches:
            logp = torch.log_softmax(module.model(b["tokens"], b["mask"]).double(), -1)
            t = causal_targets(b["tokens"], b["mask"])
            scored = t != IGNORE
            token_nll = -logp.gather(-1, t.clamp(min=0)[..., None])[..., 0][scored]
            nll += token_nll.sum().item()
            count += int(scored.sum())
            correct += int((logp.argmax(-1) == t)[scored].sum())
            batch_ppl.append(math.exp(token_nll.mean().item()))
    assert metrics["valid/perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-5)
    assert metrics["valid/loss"] == pytest.approx(nll / count, rel=1e-5)
    assert metrics["valid/accuracy"] == pytest.approx(correct / count)
    assert abs(sum(batch_ppl) / 2 - metrics["valid/perplexity"]) > 1e-3


def test_validation_masking_is_fixed(tmp_path):
    torch.manual_seed(0)
    module = tiny_module("exact", "mlm")
    batches = [make_batch([protein(i, 20), protein(i + 10, 12)]) for i in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = [
            _trainer(tmp_path).validate(module, dataloaders=_loader(batches), verbose=False)[0][
                "valid/perplexity"
            ]
            for _ in range(2)
        ]
    assert runs[0] == runs[1]


def test_fit_logs_training_metrics(tmp_path):
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger

    torch.manual_seed(0)
    module = tiny_module(
        KINDS[-1],
        "mlm",
        optim={"warmup_steps": 2},
        nb_features=16,
        chunk_size=64,
        redraw_interval=2,
    )
    batches = [make_batch([protein(i, 12), protein(i + 7, 9)]) for i in range(4)]
    trainer = _trainer(
        tmp_path,
        max_steps=4,
        log_every_n_steps=1,
        logger=CSVLogger(tmp_path, name="csv"),
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(
            module, train_dataloaders=_loader(batches), val_dataloaders=_loader(batches[:2])
        )
    import pandas as pd

    frame = pd.read_csv(next(tmp_path.glob("csv/*/metrics.csv")))
    for col in (
        "train/loss",
        "train/accuracy",
        "train/lr",
        "train/tokens_per_s",
        "train/feature_redraws",
        "valid/perplexity",
        "valid/loss",
        "valid/accuracy",
    ):
        assert col in frame.columns, col
    assert (frame["train/tokens_per_s"].dropna() > 0).all()
    # warm-up: lr rises over the first two steps
    lr = frame["train/lr"].dropna().tolist()
    assert lr[0] < lr[1]
    if KINDS[-1].startswith("favor"):
        assert frame["train/feature_redraws"].dropna().max() == 1  # one layer, step 2
    assert isinstance(trainer, pl.Trainer)


def _fit_final_loss(tmp_path, precision: str) -> tuple[float, ProteinLMModule]:
    torch.manual_seed(0)
    module = tiny_module(
        KINDS[-1], "clm", optim={"lr": 1e-2, "warmup_steps": 2, "weight_decay": 0.0}
    )
    batches = [make_batch([protein(1, 20)])] * 30
    trainer = _trainer(
        tmp_path, max_steps=30, precision=precision, num_sanity_val_steps=0, gradient_clip_val=0.5
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, train_dataloaders=_loader(batches))
    with torch.no_grad():
        return module.compute_loss(batches[0])["loss"].item(), module


def test_bf16_mixed_training_is_stable(tmp_path):
    ref, _ = _fit_final_loss(tmp_path, "32-true")
    got, module = _fit_final_loss(tmp_path, "bf16-mixed")
    assert all(torch.isfinite(p).all() for p in module.parameters())
    assert module.model.token_embedding.weight.dtype == torch.float32  # master weights
    assert ref < 1.0 and got < 1.0, (ref, got)  # from ~3.4 (uniform over 31 tokens)
    assert abs(got - ref) < 0.25, (ref, got)
