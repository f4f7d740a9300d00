"""Learning-rate schedule shape and weight-decay groups."""

from __future__ import annotations

import math

import pytest
import torch
from common import tiny_lm

from protein_performer.training.optim import (
    OptimConfig,
    WarmupDecay,
    build_optimizer,
    build_scheduler,
    parameter_groups,
)


def lrs(cfg: OptimConfig, total: int, steps: int) -> list[float]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=cfg.lr)
    sched = build_scheduler(opt, cfg, total)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_schedule_shape(schedule):
    cfg = OptimConfig(lr=1e-3, warmup_steps=10, schedule=schedule, min_lr_ratio=0.1)
    got = lrs(cfg, total=110, steps=130)
    # linear warm-up: the first step already moves, full lr at the end of the warm-up
    assert got[0] == pytest.approx(1e-4)
    assert got[9] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(got[:9], got[1:10]))
    for step in (10, 35, 60, 85, 110, 129):
        progress = min(1.0, (step - 10) / 100)
        if schedule == "cosine":
            want = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
        elif schedule == "linear":
            want = 1.0 - 0.9 * progress
        else:
            want = 1.0
        assert got[step] == pytest.approx(1e-3 * want), step
    if schedule != "constant":
        assert all(a >= b for a, b in zip(got[9:], got[10:]))


def test_no_warmup_and_unknown_total():
    f = WarmupDecay(0, None, "cosine", 0.1)
    assert f(0) == 1.0 and f(10**6) == 1.0


def test_config_validation():
    with pytest.raises(ValueError, match="optim.schedule must be one of"):
        OptimConfig(schedule="step")
    with pytest.raises(ValueError, match="optim.lr must be > 0"):
        OptimConfig(lr=0)
    with pytest.raises(ValueError, match="optim.betas"):
        OptimConfig(betas=(0.9, 1.0))
    assert OptimConfig(betas=[0.9, 0.98]).betas == (0.9, 0.98)


@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rotary"])
def test_weight_decay_groups(position):
    model = tiny_lm("exact", seed=None, d_model=32, d_ff=64, position=position)
    decay, no_decay = parameter_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    got_decay = {names[id(p)] for p in decay["params"]}
    got_none = {names[id(p)] for p in no_decay["params"]}
    assert not got_decay & got_none
    assert got_decay | got_none == set(names.values())  # every parameter, once
    for name in got_decay:
        assert name.endswith(".weight") and "norm" not in name and "positions" not in name
    assert "token_embedding.weight" in got_decay
    assert "blocks.0.attn.to_q.weight" in got_decay and "blocks.1.ff.fc2.weight" in got_decay
    assert "blocks.0.norm1.weight" in got_none and "blocks.0.attn.to_q.bias" in got_none
    assert "head_bias" in got_none and "norm.weight" in got_none
    if position == "learned":
        assert "positions.table.weight" in got_none
    if position == "sinusoidal":  # the fixed table is a buffer; its one scale is not decayed
        assert "positions.scale" in got_none
    opt = build_optimizer(model, OptimConfig(lr=2e-3))
    assert opt.defaults["lr"] == 2e-3 and opt.defaults["betas"] == (0.9, 0.98)
    assert opt.defaults["eps"] == 1e-9
