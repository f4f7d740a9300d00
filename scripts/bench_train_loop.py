"""Tokens/s of the real training loop (Lightning, as ``protein-performer-train`` builds it)
against a bare PyTorch AdamW loop over the same model, batches, loss and clipping.

    python scripts/bench_train_loop.py --steps 60 --warmup 10 --repeats 2 \\
        --out bench_results/train_loop
    python scripts/bench_train_loop.py --precision 32-true bf16-mixed attention=exact objective=clm

Each measurement is a fresh model and DataModule in this process; the two loops alternate
(lightning, bare, lightning, bare, ...) so a shared machine's slow spells hit both. Only the
steps after ``--warmup`` are timed (data loading included: both loops iterate the DataModule's
train loader). Prints a table and writes ``train_loop.csv``; trailing arguments are Hydra
overrides of conf/train.yaml (model, attention, objective, data, ...).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import platform
import time
from pathlib import Path

import pandas as pd
import torch


def _setup(overrides: list[str], out: Path, steps: int):
    from protein_performer.cli.config import build_setup, compose_train

    cfg = compose_train(
        [
            *overrides,
            f"trainer.max_steps={steps}",
            "logger=csv",
            "test=false",
            f"trainer.val_check_interval={10 * steps}",
            "trainer.limit_val_batches=0",
        ],
        output_dir=out,
    )
    return cfg, build_setup(cfg)


def _module(setup):
    from protein_performer.data.datamodule import ProteinDataModule
    from protein_performer.training.module import ProteinLMModule

    torch.manual_seed(setup.seed)
    dm = ProteinDataModule(setup.data)
    module = ProteinLMModule(model=setup.model, objective=setup.objective, optim=setup.optim)
    return dm, module


class _Clock:
    """Wall time from the end of step ``warmup`` to the end of the last step, and tokens."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.t1, self.tokens = warmup, None, None, 0

    def step_end(self, step: int, tokens: int) -> None:
        if step == self.warmup:
            self.t0 = time.perf_counter()
        elif step > self.warmup:
            self.tokens += tokens
            self.t1 = time.perf_counter()

    def rate(self) -> float:
        return self.tokens / (self.t1 - self.t0)


def run_lightning(
    overrides: list[str], out: Path, steps: int, warmup: int, precision: str
) -> float:
    import hydra
    import pytorch_lightning as pl

    from protein_performer.cli.train import _instantiate_all

    cfg, setup = _setup(overrides, out, steps)
    dm, module = _module(setup)
    clock = _Clock(warmup)

    class Timer(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            clock.step_end(trainer.global_step, int(batch["mask"].sum()))

    callbacks = [*_instantiate_all(cfg.get("callbacks")), Timer()]
    loggers = _instantiate_all(cfg.get("logger"))
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers,
        use_distributed_sampler=False,
        precision=precision,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    return clock.rate()


def bare_update(model, opt, sched, loss) -> None:
    """The optimizer update of the bare loop: backward, clip at 1.0, AdamW and schedule step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()


def run_bare(overrides: list[str], out: Path, steps: int, warmup: int, precision: str) -> float:
    from protein_performer.training.optim import build_optimizer, build_scheduler

    _, setup = _setup(overrides, out, steps)
    dm, module = _module(setup)
    dm.setup("fit")
    model = module.model.train()
    opt = build_optimizer(model, setup.optim)
    sched = build_scheduler(opt, setup.optim, steps)
    clock = _Clock(warmup)
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if precision == "bf16-mixed"
        else contextlib.nullcontext()
    )
    step = 0
    while step < steps:
        for batch in dm.train_dataloader():
            with autocast:
                loss = module.compute_loss(batch, torch.Generator().manual_seed(step))["loss"]
            bare_update(model, opt, sched, loss)
            step += 1
            clock.step_end(step, int(batch["mask"].sum()))
            if step >= steps:
                break
    return clock.rate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["32-true"])
    parser.add_argument("--out", default="bench_results/train_loop")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml")
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for precision in args.precision:
        for rep in range(args.repeats):
            for loop, fn in (("lightning", run_lightning), ("bare", run_bare)):
                rate = fn(args.overrides, out / f"{loop}-{rep}", args.steps, args.warmup, precision)
                rows.append(
                    {"precision": precision, "loop": loop, "repeat": rep, "tokens_per_s": rate}
                )
                print(f"{precision:>10} {loop:>9} #{rep}: {rate:,.0f} tok/s", flush=True)
    df = pd.DataFrame(rows)
    best = df.groupby(["precision", "loop"])["tokens_per_s"].max().unstack("loop")
    best["lightning/bare"] = best["lightning"] / best["bare"]
    print(
        f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; overrides: {' '.join(args.overrides) or '(defaults)'}"
    )
    print(best.to_markdown(floatfmt=",.3f"))
    df.to_csv(out / "train_loop.csv", index=False)
    best.to_csv(out / "train_loop_best.csv")


if __name__ == "__main__":
    main()
