"""``protein-performer-eval``: perplexity and accuracy of a checkpoint on FASTA files.

    protein-performer-eval ckpt_path=run/last.ckpt 'fasta=[test.fasta.gz,ood.fasta.gz]'

Thin: :func:`evaluate` turns the config into typed options and calls
:func:`protein_performer.evaluation.checkpoint_eval.evaluate_checkpoint`; it writes
``metrics.json`` (and per-protein CSVs) into the run directory and prints the table.
Bad inputs (missing checkpoint or file, malformed FASTA, an empty file) end with a one-line
error and exit status 2.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

# Registers ${pp_root:} (conf/paths/default.yaml) and gives the shared path rules.
from protein_performer.cli.config import CONF_DIR, user_path
from protein_performer.jsonsafe import finite


PROG = "protein-performer-eval"


def _input_paths(fasta) -> list[Path]:
    from protein_performer.evaluation.unigram import EMBEDDED_VALID

    if fasta is None:
        return [EMBEDDED_VALID]
    if isinstance(fasta, str):
        fasta = [fasta]
    paths = [user_path(str(p)) for p in fasta]
    if not paths:
        raise ValueError("fasta must list at least one file, e.g. 'fasta=[test.fasta.gz]'")
    return paths


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.fasta``; returns what ``metrics.json`` holds."""
    from protein_performer.evaluation.checkpoint_eval import evaluate_checkpoint
    from protein_performer.evaluation.perplexity import EvalOptions, EvaluationInputError
    from protein_performer.runner import file_labels, load_model, open_input
    from protein_performer.evaluation.tables import format_table, metrics_table

    try:
        ckpt_value = cfg.ckpt_path
    except MissingMandatoryValue:
        ckpt_value = None
    if not ckpt_value:
        raise ValueError(f"ckpt_path is required: {PROG} ckpt_path=path/to/last.ckpt")
    ckpt = user_path(str(ckpt_value))
    paths = _input_paths(
        OmegaConf.to_container(cfg.fasta) if OmegaConf.is_config(cfg.fasta) else cfg.fasta
    )
    options = EvalOptions(
        batch_tokens=int(cfg.batch_tokens),
        window=cfg.window,
        stride=cfg.stride,
        n_maskings=int(cfg.n_maskings),
        mask_prob=float(cfg.mask_prob),
        seed=int(cfg.seed),
        pseudo_perplexity=bool(cfg.pseudo_perplexity),
        chunk_proteins=int(cfg.chunk_proteins),
        device=str(cfg.device),
        progress=bool(cfg.progress),
        max_proteins=cfg.max_proteins,
    )
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not ckpt.exists():
        raise EvaluationInputError(
            f"checkpoint not found: {ckpt} (set ckpt_path= to a .ckpt written by "
            "protein-performer-train, e.g. <run dir>/checkpoints/last.ckpt, or to a folder "
            "written by protein-performer-export)"
        )
    # Read (and check) every input before the model: a bad file fails fast.
    labels = file_labels(paths)
    sources = {label: open_input(p) for label, p in zip(labels, paths)}
    loaded = load_model(ckpt)
    run = evaluate_checkpoint(
        loaded,
        sources,
        options=options,
        checkpoint=str(ckpt),
        per_protein_dir=out_dir / "per_protein" if cfg.per_protein else None,
    )
    for label, p in zip(labels, paths):
        run.files[label]["path"] = str(p)
    result = finite({**run.summary(), "options": dataclasses.asdict(options)})
    result["output_dir"] = str(out_dir)
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(json.dumps(result, indent=2) + "\n")
    table = metrics_table(run.files)
    print(format_table(table))
    first = next(iter(run.files.values()))
    print(
        f"unigram baseline: {run.unigram_source}; windows of {first['window']} tokens, "
        f"stride {first['stride']}"
    )
    print(f"wrote {metrics_path}")
    return result


# An absolute path: Hydra resolves a relative one as a Python package, which conf/ is not.
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    # Input errors are ValueErrors that name the file and the fix (EvaluationInputError,
    # FastaFormatError, InvalidResidueError, CheckpointError, option checks): one line, status 2.
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{PROG}: error: {err}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
