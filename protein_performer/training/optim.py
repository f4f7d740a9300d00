"""AdamW with decoupled weight decay on weight matrices only, and a warm-up + decay schedule."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from protein_performer.fields import check_fields

SCHEDULES = ("cosine", "linear", "constant")


@dataclass
class OptimConfig:
    """AdamW and learning-rate schedule (defaults: the Performer paper's protein runs).

    The learning rate rises linearly over ``warmup_steps`` optimizer steps to ``lr``, then
    decays to ``min_lr_ratio * lr`` at ``total_steps`` (cosine or linear) and stays there;
    ``constant`` keeps ``lr`` after the warm-up. ``total_steps`` None: the Trainer's
    ``estimated_stepping_batches``.
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 0.1
    warmup_steps: int = 100
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    total_steps: int | None = None

    def __post_init__(self) -> None:
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


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        parameter_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int | None
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupDecay(cfg.warmup_steps, total_steps, cfg.schedule, cfg.min_lr_ratio)
    )
