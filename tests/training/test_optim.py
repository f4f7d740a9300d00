"""Learning-rate schedule shape and weight-decay groups."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from common import tiny_lm

from protein_performer.training.optim import (
    Muon,
    MuonAdamW,
    OptimConfig,
    WarmupDecay,
    build_optimizer,
    build_scheduler,
    hidden_matrices,
    newton_schulz,
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


def test_unknown_optimizer_is_a_config_error():
    with pytest.raises(ValueError, match=r"optim.name must be one of \['adamw', 'muon'\]"):
        OptimConfig(name="sgd")
    with pytest.raises(ValueError, match="optim.muon_momentum"):
        OptimConfig(name="muon", muon_momentum=1.0)


def _muon_model():
    return tiny_lm("exact", seed=0, d_model=32, d_ff=64, n_layers=2).train()


def _loss(model, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, 24, (3, 12), generator=gen)
    logits = model(tokens)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten())


def test_muon_takes_the_blocks_linear_weights_and_adamw_the_rest():
    model = _muon_model()
    opt = build_optimizer(model, OptimConfig(name="muon", lr=2e-3))
    assert isinstance(opt, MuonAdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = {names[id(p)] for g in opt.muon.param_groups for p in g["params"]}
    adamw = {names[id(p)] for g in opt.adamw.param_groups for p in g["params"]}
    assert not muon & adamw and muon | adamw == set(names.values())  # every parameter, once
    assert muon == {
        f"blocks.{i}.{m}.weight"
        for i in range(2)
        for m in ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out", "ff.fc1", "ff.fc2")
    }
    assert "token_embedding.weight" in adamw and "blocks.0.attn.to_q.bias" in adamw
    # weight decay as AdamW's groups: the embedding decays, biases and norms do not
    decay = {names[id(p)]: g["weight_decay"] for g in opt.adamw.param_groups for p in g["params"]}
    assert decay["token_embedding.weight"] == 0.1 and decay["norm.weight"] == 0.0
    assert opt.param_groups == opt.muon.param_groups + opt.adamw.param_groups


def test_muon_step_equals_the_two_torch_optimizers():
    """One step of the combined optimizer = Muon on the hidden matrices and AdamW on the
    rest, each run alone; one LR scheduler moves both halves."""
    cfg = OptimConfig(name="muon", lr=2e-3, warmup_steps=2, total_steps=10)
    model, ref = _muon_model(), _muon_model()
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, 10)
    hidden = hidden_matrices(ref)
    taken = {id(p) for p in hidden}
    groups = [
        {**g, "params": [p for p in g["params"] if id(p) not in taken]}
        for g in parameter_groups(ref, cfg.weight_decay)
    ]
    ref_muon = Muon(hidden, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ref_adamw = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    refs = (ref_muon, ref_adamw)
    ref_scheds = [build_scheduler(o, cfg, 10) for o in refs]
    for step in range(3):
        opt.zero_grad()
        _loss(model, step).backward()
        opt.step()
        sched.step()
        for o in refs:
            o.zero_grad()
        _loss(ref, step).backward()
        for o, s in zip(refs, ref_scheds):
            o.step()
            s.step()
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    want = cfg.lr * WarmupDecay(2, 10, "cosine", 0.1)(3)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([want] * len(opt.param_groups))
    start = _muon_model().blocks[0].attn.to_q.weight
    assert not torch.equal(model.blocks[0].attn.to_q.weight, start)


def test_muon_state_round_trips_and_refuses_an_adamw_state():
    cfg = OptimConfig(name="muon", lr=2e-3)
    model = _muon_model()
    opt = build_optimizer(model, cfg)
    for step in range(2):
        opt.zero_grad()
        _loss(model, step).backward()
        opt.step()
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    state = copy.deepcopy(opt.state_dict())  # state_dict() holds the live tensors
    # continue here, and in a copy restored from the state
    opt.zero_grad()
    _loss(model, 5).backward()
    opt.step()
    other = _muon_model()
    other.load_state_dict(saved)
    again = build_optimizer(other, cfg)
    again.load_state_dict(state)
    again.zero_grad()
    _loss(other, 5).backward()
    again.step()
    for (name, p), q in zip(model.named_parameters(), other.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    adamw_state = build_optimizer(other, OptimConfig()).state_dict()
    with pytest.raises(ValueError, match="not optim.name=muon's"):
        again.load_state_dict(adamw_state)


def test_muon_in_bf16_equals_torch_muon():
    """The project's Muon with its iteration in bf16 is torch.optim.Muon (match_rms_adamw)."""
    torch.manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(48, 24)), torch.nn.Parameter(torch.randn(16, 40))]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt = Muon(ours, lr=0.01, weight_decay=0.1, ns_dtype=torch.bfloat16)
    torch_opt = torch.optim.Muon(ref, lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    for _ in range(3):
        grads = [torch.randn_like(p) for p in ours]
        for params, o in ((ours, opt), (ref, torch_opt)):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            o.step()
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(64, 64), (128, 256), (256, 128)])
def test_newton_schulz_orthogonalises_in_float32(shape):
    """Five quintic steps push the singular values into ~[0.7, 1.2] (all but the tiniest few
    of a square Gaussian, by design) and keep the singular vectors: close to U V^T of the
    float64 SVD."""
    gen = torch.Generator().manual_seed(1)
    g = torch.randn(*shape, generator=gen, dtype=torch.float64)
    out = newton_schulz(g.float(), 5)
    assert out.dtype == torch.float32 and out.shape == g.shape
    sv = torch.linalg.svdvals(out.double())
    assert sv.max() < 1.25 and (sv > 0.6).double().mean() > 0.95, sv
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    polar = u @ vh
    cosine = (out.double() * polar).sum() / (out.double().norm() * polar.norm())
    assert cosine > 0.97
    with pytest.raises(ValueError, match="2-D parameters"):
        Muon([torch.nn.Parameter(torch.zeros(3))], lr=0.1, weight_decay=0.0)


def test_muon_on_cpu_iterates_in_float32_not_torchs_bf16():
    """On CPU the default iteration is float32 (torch's bf16 is emulated without AVX512-BF16):
    the step equals an explicit float32 one and differs from the bf16 one."""
    torch.manual_seed(0)
    start, grad = torch.randn(32, 48), torch.randn(32, 48)
    moved = {}
    for name, dtype in (("default", None), ("float32", torch.float32), ("bf16", torch.bfloat16)):
        p = torch.nn.Parameter(start.clone())
        p.grad = grad.clone()
        Muon([p], lr=0.01, weight_decay=0.0, ns_dtype=dtype).step()
        moved[name] = p.detach()
    torch.testing.assert_close(moved["default"], moved["float32"], rtol=0, atol=0)
    assert not torch.allclose(moved["default"], moved["bf16"], rtol=0, atol=1e-6)
