"""``protein-performer-score``: per-protein likelihoods, or variant-effect scores of mutants.

    protein-performer-score ckpt_path=run/last.ckpt 'fasta=[proteins.fasta.gz]'
    protein-performer-score ckpt_path=run/last.ckpt wild_type=MKTAYIAK mutations=dms.csv

Exactly one mode per run: ``fasta=`` gives per-protein log-likelihood, mean NLL and
perplexity (:mod:`protein_performer.inference.likelihood`) in ``protein_scores.csv``;
``wild_type=`` with ``mutations=`` parses the CSV, validates every mutant against the wild
type (errors name the row), scores with :func:`protein_performer.inference.score.score_mutants`,
writes ``scores.csv`` and prints Spearman rho when a measured column exists.
Bad input: one line, exit status 2.
"""

from __future__ import annotations

import math
from pathlib import Path

import hydra
from omegaconf import DictConfig

from protein_performer.cli.config import CONF_DIR, ConfigError, user_path
from protein_performer.cli.task import given, input_paths, require, run_task
from protein_performer.inference.likelihood import method, write_likelihoods_csv
from protein_performer.inference.mutations import parse_mutant, read_mutation_table
from protein_performer.inference.score import score_mutants, spearman
from protein_performer.runner import Engine, file_labels, load_model, open_input

PROG = "protein-performer-score"
USAGE = (
    f"{PROG} ckpt_path=last.ckpt 'fasta=[proteins.fasta.gz]' (per-protein scores) or "
    f"{PROG} ckpt_path=last.ckpt wild_type=MKTAYIAK mutations=variants.csv (variant scores)"
)
CKPT_USAGE = f"{PROG} ckpt_path=path/to/last.ckpt"


def score(cfg: DictConfig) -> dict:
    """Run the mode the config asks for: ``fasta=`` -> :func:`score_proteins`, ``wild_type=``
    and ``mutations=`` -> :func:`score_variants`; both or neither is an error naming both."""
    per_protein = given(cfg, "fasta")
    variants = [k for k in ("wild_type", "mutations") if given(cfg, k)]
    if per_protein and variants:
        raise ConfigError(
            f"give fasta= (per-protein scores) or wild_type= with mutations= "
            f"(variant scores), not both (got fasta= and {'= and '.join(variants)}=)"
            f": {USAGE}"
        )
    if not per_protein and not variants:
        raise ConfigError(
            f"nothing to score: give fasta= (per-protein scores) or wild_type= "
            f"with mutations= (variant scores): {USAGE}"
        )
    return score_proteins(cfg) if per_protein else score_variants(cfg)


def score_proteins(cfg: DictConfig) -> dict:
    """Per-protein likelihoods of ``cfg.fasta`` into one CSV; returns {'csv', 'files'}."""
    ckpt = user_path(require(cfg, "ckpt_path", CKPT_USAGE))
    paths = input_paths(cfg.fasta)
    # Read (and check) every input before the model: a bad file fails fast.
    sources = {label: open_input(p) for label, p in zip(file_labels(paths), paths)}
    loaded = load_model(ckpt)
    engine = Engine(loaded.model, str(cfg.device))  # the one device decision
    out = user_path(str(cfg.out)) if cfg.out else Path(cfg.paths.output_dir) / "protein_scores.csv"
    totals = write_likelihoods_csv(
        engine,
        out,
        sources,
        objective=loaded.objective,
        max_length=loaded.model_cfg.max_length,
        window=cfg.window,
        stride=cfg.stride,
        batch_tokens=int(cfg.batch_tokens),
        max_proteins=cfg.max_proteins,
        progress=bool(cfg.progress),
    )
    kind = {"exact": "exact log-likelihood", "pseudo": "pseudo-log-likelihood"}
    print(
        f"scored {sum(t['n_sequences'] for t in totals.values())} proteins "
        f"({kind[method(loaded.objective)]}); wrote {out}"
    )
    for label, t in totals.items():
        print(
            f"{label}: {t['n_sequences']} proteins, perplexity {t['perplexity']:.4f} "
            f"over {t['n_tokens']} tokens"
        )
    return {"csv": str(out), "files": totals}


def score_variants(cfg: DictConfig) -> dict:
    """Score ``cfg.mutations`` against ``cfg.wild_type``; returns {'csv', 'n', 'spearman'}."""
    ckpt = user_path(require(cfg, "ckpt_path", CKPT_USAGE))
    wild_type = require(cfg, "wild_type", f"{PROG} wild_type=MKTAYIAK...").strip().upper()
    csv = user_path(require(cfg, "mutations", f"{PROG} mutations=variants.csv"))
    if not csv.is_file():
        raise ConfigError(f"mutations CSV not found: {csv}")
    col = str(cfg.mutant_column)
    table, measured = read_mutation_table(csv, col, str(cfg.measured) if cfg.measured else None)
    # Row numbers as a spreadsheet shows them: header is line 1.
    mutants = [
        parse_mutant(t, wild_type, offset=int(cfg.offset), row=f"{csv.name} line {i + 2}")
        for i, t in enumerate(table[col].astype(str))
    ]
    loaded = load_model(ckpt)
    engine = Engine(loaded.model, str(cfg.device))
    table["score"] = score_mutants(engine, wild_type, mutants, loaded.objective)
    out = user_path(str(cfg.out)) if cfg.out else Path(cfg.paths.output_dir) / "scores.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    rho = spearman(table["score"], table[measured]) if measured is not None else None
    kind = "log-likelihood ratio" if loaded.objective.causal else "masked marginal"
    print(f"scored {len(table)} mutants ({kind}); wrote {out}")
    if rho is not None and math.isfinite(rho):
        print(f"Spearman rho vs {measured}: {rho:.4f}")
    elif rho is not None:  # too few measured values (or all equal): no number to print
        n = int(table[measured].notna().sum())
        print(
            f"Spearman rho vs {measured}: undefined (it needs 2 or more measured values "
            f"that differ; found {n} measured)"
        )
    return {"csv": str(out), "n": len(table), "spearman": rho}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="score")
def _hydra_main(cfg: DictConfig) -> None:
    run_task(PROG, score, cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
