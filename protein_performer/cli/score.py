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


USAGE = (
    f"{PROG} ckpt_path=last.ckpt 'fasta=[proteins.fasta.gz]' (per-protein scores) or "
    f"{PROG} ckpt_path=last.ckpt wild_type=MKTAYIAK mutations=variants.csv (variant scores)"
)


def _given(cfg: DictConfig, key: str) -> bool:
    try:
        return bool(cfg[key])
    except MissingMandatoryValue:
        return False


def score(cfg: DictConfig) -> dict:
    """Run the mode the config asks for: ``fasta=`` -> :func:`score_proteins`, ``wild_type=``
    and ``mutations=`` -> :func:`score_variants`; both or neither is an error naming both."""
    per_protein = _given(cfg, "fasta")
    variants = [k for k in ("wild_type", "mutations") if _given(cfg, k)]
    if per_protein and variants:
        raise ValueError(
            f"give fasta= (per-protein scores) or wild_type= with mutations= "
            f"(variant scores), not both (got fasta= and {'= and '.join(variants)}=)"
            f": {USAGE}"
        )
    if not per_protein and not variants:
        raise ValueError(
            f"nothing to score: give fasta= (per-protein scores) or wild_type= "
            f"with mutations= (variant scores): {USAGE}"
        )
    return score_proteins(cfg) if per_protein else score_variants(cfg)


def score_proteins(cfg: DictConfig) -> dict:
    """Per-protein likelihoods of ``cfg.fasta`` into one CSV; returns {'csv', 'files'}."""
    from omegaconf import OmegaConf

    from protein_performer.cli.evaluate import _input_paths
    from protein_performer.devices import resolve_device
    from protein_performer.runner import file_labels, open_input
    from protein_performer.inference.likelihood import METHODS, write_likelihoods_csv
    from protein_performer.runner import load_model

    ckpt = user_path(_required(cfg, "ckpt_path", "ckpt_path=path/to/last.ckpt"))
    fasta = OmegaConf.to_container(cfg.fasta) if OmegaConf.is_config(cfg.fasta) else cfg.fasta
    paths = _input_paths(fasta)
    # Read (and check) every input before the model: a bad file fails fast.
    sources = {label: open_input(p) for label, p in zip(file_labels(paths), paths)}
    device = resolve_device(str(cfg.device))
    loaded = load_model(ckpt, device)
    model = loaded.model.to(device).eval()
    out = user_path(str(cfg.out)) if cfg.out else Path(cfg.paths.output_dir) / "protein_scores.csv"
    totals = write_likelihoods_csv(
        model,
        out,
        sources,
        objective=loaded.objective,
        max_length=model.cfg.max_length,
        window=cfg.window,
        stride=cfg.stride,
        batch_tokens=int(cfg.batch_tokens),
        max_proteins=cfg.max_proteins,
        device=str(device),
        progress=bool(cfg.progress),
    )
    kind = {"exact": "exact log-likelihood", "pseudo": "pseudo-log-likelihood"}
    print(
        f"scored {sum(t['n_sequences'] for t in totals.values())} proteins "
        f"({kind[METHODS[str(loaded.objective)]]}); wrote {out}"
    )
    for label, t in totals.items():
        print(
            f"{label}: {t['n_sequences']} proteins, perplexity {t['perplexity']:.4f} "
            f"over {t['n_tokens']} tokens"
        )
    return {"csv": str(out), "files": totals}


def score_variants(cfg: DictConfig) -> dict:
    """Score ``cfg.mutations`` against ``cfg.wild_type``; returns {'csv', 'n', 'spearman'}."""
    import pandas as pd

    from protein_performer.devices import resolve_device
    from protein_performer.inference.mutations import parse_mutant
    from protein_performer.inference.score import score_mutants, spearman
    from protein_performer.runner import load_model

    ckpt = user_path(_required(cfg, "ckpt_path", "ckpt_path=path/to/last.ckpt"))
    wild_type = _required(cfg, "wild_type", "wild_type=MKTAYIAK...").strip().upper()
    csv = user_path(_required(cfg, "mutations", "mutations=variants.csv"))
    if not csv.is_file():
        raise FileNotFoundError(f"mutations CSV not found: {csv}")
    table = pd.read_csv(csv)
    col = str(cfg.mutant_column)
    if col not in table.columns:
        raise ValueError(
            f"{csv}: no column {col!r} (columns: {list(table.columns)}); set mutant_column="
        )
    measured = cfg.measured if cfg.measured else ("measured" if "measured" in table else None)
    if measured is not None and measured not in table.columns:
        raise ValueError(f"{csv}: no measured column {measured!r} (columns: {list(table.columns)})")
    # Row numbers as a spreadsheet shows them: header is line 1.
    mutants = [
        parse_mutant(t, wild_type, offset=int(cfg.offset), row=f"{csv.name} line {i + 2}")
        for i, t in enumerate(table[col].astype(str))
    ]
    loaded = load_model(ckpt, resolve_device(str(cfg.device)))
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
