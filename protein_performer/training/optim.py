"""The optimizer (AdamW, or Muon on the blocks' hidden matrices beside AdamW) with decoupled
weight decay on weight matrices only, and a warm-up + decay schedule."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from protein_performer.fields import check_fields

SCHEDULES = ("cosine", "linear", "constant")
OPTIMIZERS = ("adamw", "muon")


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule (defaults: the Performer paper's protein runs).

    ``name``: ``adamw``, or ``muon``: :class:`Muon` (momentum ``muon_momentum``, Nesterov,
    its update scaled to AdamW's RMS so that one ``lr`` and schedule serve both) on
    the 2-D weights of the Linear layers inside the transformer blocks, AdamW on everything else
    (embeddings, the output head, norms, biases, positions) - see :class:`MuonAdamW`.

    The learning rate rises linearly over ``warmup_steps`` optimizer steps to ``lr``, then
    decays to ``min_lr_ratio * lr`` at ``total_steps`` (cosine or linear) and stays there;
    ``constant`` keeps ``lr`` after the warm-up. ``total_steps`` None: the Trainer's
    ``estimated_stepping_batches``.
    """

    name: str = "adamw"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 0.1
    warmup_steps: int = 100
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    total_steps: int | None = None
    muon_momentum: float = 0.95

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optim.name must be one of {list(OPTIMIZERS)}, got {self.name!r}")
        if not 0.0 <= self.muon_momentum < 1.0:
            raise ValueError(f"optim.muon_momentum must be in [0, 1), got {self.muon_momentum}")
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        betas = tuple(float(b) for b in self.betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"optim.betas must be two values in [0, 1), got {list(self.betas)}")
        self.betas = betas  # type: ignore[assignment]
        if not self.eps > 0:
            raise ValueError(f"optim.eps must be > 0, got {self.eps}")
        if self.weight_decay < 0:
            raise ValueError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"optim.schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}"
            )
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.total_steps is not None and self.total_steps <= 0:
            raise ValueError(f"optim.total_steps must be > 0 or null, got {self.total_steps}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> OptimConfig:
        """The config :meth:`to_dict` wrote (a checkpoint's ``optim`` hyper-parameters)."""
        check_fields(cls, "optim", values)
        return cls(**values)


class WarmupDecay:
    """lr multiplier at optimizer step ``s`` (a picklable callable for ``LambdaLR``).

    ``s < warmup``: (s + 1) / warmup (the first step already moves); then cosine/linear from 1
    to ``min_lr_ratio`` over ``total - warmup`` steps; ``min_lr_ratio`` after ``total``.
    """

    def __init__(
        self, warmup_steps: int, total_steps: int | None, schedule: str, min_lr_ratio: float
    ) -> None:
        self.warmup_steps = int(warmup_steps)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.schedule = schedule
        self.min_lr_ratio = float(min_lr_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.schedule == "constant" or self.total_steps is None:
            return 1.0
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        if self.schedule == "cosine":
            decay = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            decay = 1.0 - progress
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * decay


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: decay on Linear weights and the token embedding (the tied output
    matrix); none on biases, LayerNorm, the positional table and any other parameter
    (e.g. AFT position biases). Tied parameters appear once."""
    decay: dict[int, nn.Parameter] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            decay[id(module.weight)] = module.weight
        elif isinstance(module, nn.Embedding) and name.split(".")[-1] == "token_embedding":
            decay[id(module.weight)] = module.weight
    params = list(dict.fromkeys(p for p in model.parameters() if p.requires_grad))
    with_decay = [p for p in params if id(p) in decay]
    without = [p for p in params if id(p) not in decay]
    return [
        {"params": with_decay, "weight_decay": weight_decay},
        {"params": without, "weight_decay": 0.0},
    ]


# Muon's quintic Newton-Schulz coefficients (Keller Jordan's, as torch.optim.Muon's defaults)
NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)


def newton_schulz(g: Tensor, steps: int = 5, dtype: torch.dtype | None = None) -> Tensor:
    """Muon's orthogonalisation of a 2-D ``g``: ~U V^T of its SVD (singular values pushed
    into ~[0.7, 1.2]) by the quintic Newton-Schulz iteration, computed in ``dtype`` (None:
    g's) and returned in g's dtype. The same ops as torch.optim.Muon's, which fixes bf16."""
    a, b, c = NS_COEFFICIENTS
    x = g.to(dtype or g.dtype)
    tall = x.size(0) > x.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return (x.T if tall else x).to(g.dtype)


def newton_schulz_dtype(p: Tensor) -> torch.dtype:
    """bf16 on accelerators (the reference's choice); float32 on CPU, where torch.optim.Muon's
    fixed bf16 matmuls are emulated without AVX512-BF16 (2.2x the demo's step measured)."""
    return torch.float32 if p.device.type == "cpu" else torch.bfloat16


def _evaluate(closure) -> Any:
    """The loss of an optimizer's ``step(closure)`` (None without one), with gradients on."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class Muon(torch.optim.Optimizer):
    """Muon (Jordan et al. 2024) for 2-D parameters: Nesterov momentum, orthogonalised by
    :func:`newton_schulz`, scaled to AdamW's update RMS (0.2 sqrt(max(rows, cols)), Liu et
    al. 2025, "Muon is scalable for LLM training") so that AdamW's lr carries over, with
    decoupled weight decay. Equal to ``torch.optim.Muon(adjust_lr_fn="match_rms_adamw")``
    when its iteration runs in bf16 (tested); :func:`newton_schulz_dtype` picks the dtype."""

    def __init__(
        self,
        params: list[nn.Parameter],
        lr: float,
        weight_decay: float,
        momentum: float = 0.95,
        ns_steps: int = 5,
        ns_dtype: torch.dtype | None = None,
    ) -> None:
        for p in params:
            if p.dim() != 2:
                raise ValueError(f"Muon takes 2-D parameters, got shape {tuple(p.shape)}")
        defaults = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum}
        super().__init__(params, defaults)
        self.ns_steps = ns_steps
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = _evaluate(closure)
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.lerp_(p.grad, 1 - momentum)
                update = p.grad.lerp(buf, momentum)  # Nesterov
                dtype = self.ns_dtype or newton_schulz_dtype(p)
                update = newton_schulz(update, self.ns_steps, dtype)
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(update, alpha=-lr * 0.2 * math.sqrt(max(p.shape)))
        return loss


def hidden_matrices(model: nn.Module) -> list[nn.Parameter]:
    """The 2-D weights of the Linear layers inside ``model``'s transformer blocks (a module
    path with ``blocks.<i>``): attention projections and FFN layers, Muon's share. Not the
    embeddings, the output head or a task head outside the blocks."""
    out: dict[int, nn.Parameter] = {}
    for name, module in model.named_modules():
        inside = "blocks" in name.split(".")[:-1]
        if inside and isinstance(module, nn.Linear) and module.weight.requires_grad:
            out[id(module.weight)] = module.weight
    return list(out.values())


class MuonAdamW(torch.optim.Optimizer):
    """Muon on ``hidden`` (2-D matrices), AdamW on the other groups, stepped as one optimizer.

    ``param_groups`` lists both optimizers' groups (the same dicts), so one LR scheduler and
    Lightning's gradient clipping see every parameter; ``state_dict`` holds both states.
    :class:`Muon`'s update is rescaled to AdamW's update RMS, so ``lr`` means the same for
    both halves.
    """

    def __init__(
        self,
        hidden: list[nn.Parameter],
        adamw_groups: list[dict[str, Any]],
        *,
        lr: float,
        weight_decay: float,
        betas: tuple[float, float],
        eps: float,
        momentum: float,
    ) -> None:
        if not hidden:
            raise ValueError(
                "optim.name=muon found no Linear weights inside the model's blocks; "
                "use optim.name=adamw for this model"
            )
        self.muon = Muon(hidden, lr=lr, weight_decay=weight_decay, momentum=momentum)
        self.adamw = torch.optim.AdamW(adamw_groups, lr=lr, betas=betas, eps=eps)
        self.defaults = {"lr": lr, "weight_decay": weight_decay, "betas": betas, "eps": eps}

    @property  # type: ignore[override]
    def param_groups(self) -> list[dict[str, Any]]:
        return self.muon.param_groups + self.adamw.param_groups

    @property  # type: ignore[override]
    def state(self) -> dict[Any, Any]:
        return {**self.muon.state, **self.adamw.state}

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = _evaluate(closure)
        self.muon.step()
        self.adamw.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none)
        self.adamw.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != {"muon", "adamw"}:
            raise ValueError(
                "this optimizer state is not optim.name=muon's (keys "
                f"{sorted(state_dict)}); resume with the optimizer the checkpoint was trained with"
            )
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])

    def __repr__(self) -> str:
        return f"MuonAdamW(muon={self.muon!r}, adamw={self.adamw!r})"


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    hidden = hidden_matrices(model)
    taken = {id(p) for p in hidden}
    rest = [{**g, "params": [p for p in g["params"] if id(p) not in taken]} for g in groups]
    return MuonAdamW(
        hidden,
        [g for g in rest if g["params"]],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        betas=cfg.betas,
        eps=cfg.eps,
        momentum=cfg.muon_momentum,
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int | None
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupDecay(cfg.warmup_steps, total_steps, cfg.schedule, cfg.min_lr_ratio)
    )
