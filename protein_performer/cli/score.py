"""``protein-performer-score``: variant-effect scores of a checkpoint for a CSV of mutants.

    protein-performer-score ckpt_path=run/last.ckpt wild_type=MKTAYIAK mutations=dms.csv

Thin: parses the CSV, validates every mutant against the wild type (errors name the row),
scores with :func:`protein_performer.inference.score.score_mutants`, writes ``scores.csv``
and prints Spearman rho when a measured column exists. Bad input: one line, exit status 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from protein_performer.cli.config import CONF_DIR, user_path

PROG = "protein-performer-score"


def _required(cfg: DictConfig, key: str, example: str) -> str:
    try:
        value = cfg[key]
    except MissingMandatoryValue:
        value = None
    if not value:
        raise ValueError(f"{key} is required: {PROG} {example}")
    return str(value)


def score(cfg: DictConfig) -> dict:
    """Score ``cfg.mutations`` against ``cfg.wild_type``; returns {'csv', 'n', 'spearman'}."""
    import pandas as pd

    from protein_performer.devices import resolve_device
    from protein_performer.inference.mutations import parse_mutant
    from protein_performer.inference.score import score_mutants, spearman
    from protein_performer.model.checkpoint import load_lm

    ckpt = user_path(_required(cfg, "ckpt_path", "ckpt_path=path/to/last.ckpt"))
    wild_type = _required(cfg, "wild_type", "wild_type=MKTAYIAK...").strip().upper()
    csv = user_path(_required(cfg, "mutations", "mutations=variants.csv"))
    if not csv.is_file():
        raise FileNotFoundError(f"mutations CSV not found: {csv}")
    table = pd.read_csv(csv)
    col = str(cfg.mutant_column)
    if col not in table.columns:
        raise ValueError(f"{csv}: no column {col!r} (columns: {list(table.columns)}); "
                         "set mutant_column=")
    measured = cfg.measured if cfg.measured else ("measured" if "measured" in table else None)
    if measured is not None and measured not in table.columns:
        raise ValueError(f"{csv}: no measured column {measured!r} (columns: {list(table.columns)})")
    # Row numbers as a spreadsheet shows them: header is line 1.
    mutants = [parse_mutant(t, wild_type, offset=int(cfg.offset), row=f"{csv.name} line {i + 2}")
               for i, t in enumerate(table[col].astype(str))]
    loaded = load_lm(ckpt, map_location=resolve_device(str(cfg.device)))
    table["score"] = score_mutants(loaded.model, wild_type, mutants, loaded.objective.name)
    out = user_path(str(cfg.out)) if cfg.out else Path(cfg.paths.output_dir) / "scores.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    rho = spearman(table["score"], table[measured]) if measured is not None else None
    kind = "log-likelihood ratio" if loaded.objective.causal else "masked marginal"
    print(f"scored {len(table)} mutants ({kind}); wrote {out}")
    if rho is not None:
        print(f"Spearman rho vs {measured}: {rho:.4f}")
    return {"csv": str(out), "n": len(table), "spearman": rho}


def run_or_exit(prog: str, fn, cfg: DictConfig) -> None:
    """Run ``fn(cfg)``; input errors (ValueError, FileNotFoundError) -> one line, status 2."""
    try:
        fn(cfg)
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="score")
def _hydra_main(cfg: DictConfig) -> None:
    run_or_exit(PROG, score, cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
