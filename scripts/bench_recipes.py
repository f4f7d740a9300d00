"""Which recipe learns fastest per CPU-minute (#16): every recipe gets the same wall-clock budget.

    python scripts/bench_recipes.py --minutes 4 --out bench_results/recipes
    python scripts/bench_recipes.py --minutes 4 --recipes tiny_clm_exact tiny_clm_exact_bf16

For each recipe: a short probe measures its steps/s on this machine, ``max_steps`` is set so the
run fills ``--minutes`` (the cosine schedule then ends where the budget does), the model is
trained with ``protein-performer-train``'s own code, and its last checkpoint is scored on the
first ``--eval-proteins`` proteins of Swiss-Prot valid (30%-identity clusters apart from train's
are in test_ood; valid is the random split) against the unigram baseline of the train
frequencies. Prints a table sorted by perplexity / unigram and writes ``recipes.csv``.
Needs ../shared/data (data=swissprot2014) unless ``--base`` points data elsewhere.
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from pathlib import Path

import pandas as pd
import torch

BASE = ["data=swissprot2014", "logger=csv", "test=false", "data.num_workers=1"]
TINY = ["model=tiny"]
STUDY = [
    "model.d_model=128",
    "model.n_layers=4",
    "model.n_heads=8",
    "model.d_ff=512",
]
CLM = ["objective=clm", "optim.lr=3e-3", "optim.warmup_steps=200", "data.batch_size=32"]
# the study's recipe: tiny CLM exact in bf16-mixed
STUDY_BF16 = [*TINY, *CLM, "attention=exact", "trainer.precision=bf16-mixed"]

RECIPES: dict[str, list[str]] = {
    # the defaults of conf/train.yaml: tiny favor_relu masked LM, lr 1e-3
    "defaults_mlm_favor_relu": [],
    # objective (masked LM is the demo's; its perplexity is over the masked 15%)
    "tiny_mlm_exact": [*TINY, "objective=mlm", "attention=exact", "optim.lr=3e-3"],
    "tiny_clm_exact": [*TINY, *CLM, "attention=exact"],
    # precision (bf16-mixed: only where the CPU has native bf16)
    "tiny_clm_exact_bf16": STUDY_BF16,
    # learning rate
    "tiny_clm_exact_lr1e-2": [*TINY, *CLM, "attention=exact", "optim.lr=1e-2"],
    # batch / length
    "tiny_clm_exact_b16": [*TINY, *CLM, "attention=exact", "data.batch_size=16"],
    "tiny_clm_exact_L128": [*TINY, *CLM, "attention=exact", "model.max_length=128"],
    # width / depth
    "study_clm_exact": [*STUDY, *CLM, "attention=exact"],
    # attention kind at this length
    "tiny_clm_favor_softmax": [*TINY, *CLM, "attention=favor_softmax"],
    "tiny_clm_favor_relu": [*TINY, *CLM, "attention=favor_relu"],
    "tiny_clm_favor_relu_bf16": [
        *TINY,
        *CLM,
        "attention=favor_relu",
        "trainer.precision=bf16-mixed",
    ],
    # after the crop fix, around the study recipe (tiny CLM exact bf16): context, positions,
    # depth, learning rate
    "tiny_clm_exact_bf16_L512": [*STUDY_BF16, "model.max_length=512", "data.batch_size=16"],
    "tiny_clm_exact_bf16_rotary": [*STUDY_BF16, "model.position=rotary"],
    "tiny4_clm_exact_bf16": [*STUDY_BF16, "model.n_layers=4", "model.d_ff=512"],
    "tiny_clm_exact_bf16_lr5e-3": [*STUDY_BF16, "optim.lr=5e-3"],
    # around the study recipe: no padding (token-budget batches of the same 32 x 256 tokens),
    # cosine to zero, fixed sinusoidal positions or none
    "tiny_clm_exact_bf16_tokens8192": [*STUDY_BF16, "data.max_tokens=8192"],
    "tiny_clm_exact_bf16_minlr0": [*STUDY_BF16, "optim.min_lr_ratio=0"],
    "tiny_clm_exact_bf16_sinusoidal": [*STUDY_BF16, "model.position=sinusoidal"],
    "tiny_clm_exact_bf16_nope": [*STUDY_BF16, "model.position=none"],
    # a wider model for longer budgets (1.6M parameters)
    "wide_clm_exact_bf16": [*STUDY_BF16, "model.d_model=256", "model.d_ff=1024"],
    # data: the embedded 5,000-protein sample (scored on Swiss-Prot valid like the others)
    "tiny_clm_exact_sample": [*TINY, *CLM, "attention=exact", "data=sample"],
}


def _probe(overrides: list[str], out: Path, steps: int = 24, warmup: int = 6) -> float:
    """Training steps per second of this recipe here (Lightning, no validation)."""
    import hydra
    import pytorch_lightning as pl

    from protein_performer.cli.config import build_setup, compose_train
    from protein_performer.data.datamodule import ProteinDataModule
    from protein_performer.training.module import ProteinLMModule

    cfg = compose_train(
        [
            *overrides,
            f"trainer.max_steps={steps}",
            "logger=none",
            "callbacks=none",
            "trainer.limit_val_batches=0",
        ],
        output_dir=out,
    )
    setup = build_setup(cfg)
    torch.manual_seed(setup.seed)
    stamps: list[float] = []

    class Timer(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step >= warmup:
                stamps.append(time.perf_counter())

    trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=[Timer()],
        logger=False,
        precision=setup.precision,
        use_distributed_sampler=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    module = ProteinLMModule(model=setup.model, objective=setup.objective, optim=setup.optim)
    trainer.fit(module, datamodule=ProteinDataModule(setup.data))
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def _train(overrides: list[str], out: Path, max_steps: int) -> float:
    from protein_performer.cli.config import compose_train
    from protein_performer.cli.train import train

    warmup = min(200, max(10, max_steps // 10))
    cfg = compose_train(
        [
            *overrides,
            f"trainer.max_steps={max_steps}",
            f"optim.warmup_steps={warmup}",
            f"trainer.val_check_interval={max_steps}",
            "trainer.limit_val_batches=5",
        ],
        output_dir=out,
    )
    t0 = time.perf_counter()
    train(cfg)
    return time.perf_counter() - t0


def _score(ckpt: Path, valid: Path, n: int) -> dict:
    from protein_performer.evaluation.checkpoint_eval import evaluate_checkpoint
    from protein_performer.evaluation.perplexity import EvalOptions
    from protein_performer.runner import load_model

    loaded = load_model(ckpt)
    res = evaluate_checkpoint(
        loaded,
        {"valid": valid},
        options=EvalOptions(max_proteins=n, progress=False, device="cpu", n_maskings=2),
    )
    return res.files["valid"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per recipe")
    parser.add_argument("--eval-proteins", type=int, default=400)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--out", default="bench_results/recipes")
    parser.add_argument("--valid", default="../shared/data/swissprot2014/valid.fasta.gz")
    parser.add_argument("--base", nargs="*", default=BASE, help="overrides of every recipe")
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    valid = Path(args.valid).resolve()
    if not valid.is_file():
        raise SystemExit(f"valid set not found: {valid} (pass --valid PATH)")
    rows = []
    for name in args.recipes:
        overrides = [*args.base, *RECIPES[name]]
        rate = _probe(overrides, out / name / "probe")
        steps = max(20, int(rate * args.minutes * 60))
        print(f"{name}: {rate:.2f} steps/s here -> max_steps {steps}", flush=True)
        wall = _train(overrides, out / name, steps)
        m = _score(out / name / "checkpoints" / "last.ckpt", valid, args.eval_proteins)
        row = {
            "recipe": name,
            "steps": steps,
            "train_s": round(wall, 1),
            "perplexity": m["perplexity"],
            "unigram_perplexity": m["unigram_perplexity"],
            "ratio": m["perplexity"] / m["unigram_perplexity"],
            "accuracy": m["accuracy"],
            "objective": m["objective"],
            "overrides": " ".join(RECIPES[name]),
        }
        rows.append(row)
        print(
            f"{name}: ppl {row['perplexity']:.3f} / unigram {row['unigram_perplexity']:.3f}"
            f" = {row['ratio']:.4f} after {steps} steps, {wall:.0f} s",
            flush=True,
        )
        pd.DataFrame(rows).to_csv(out / "recipes.csv", index=False)
    df = pd.DataFrame(rows).sort_values("ratio")
    print(
        f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.minutes:g} min per recipe, "
        f"scored on {args.eval_proteins} valid proteins"
    )
    print(
        df[["recipe", "steps", "train_s", "perplexity", "unigram_perplexity", "ratio"]].to_markdown(
            index=False, floatfmt=".4g"
        )
    )


if __name__ == "__main__":
    main()
