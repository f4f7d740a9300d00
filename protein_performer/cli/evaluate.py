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
from pathlib import Path

import hydra
from omegaconf import DictConfig

# Registers ${pp_root:} (conf/paths/default.yaml) and gives the shared path rules.
from protein_performer.cli.config import CONF_DIR, user_path
from protein_performer.cli.task import input_paths, options_from, require, run_task
from protein_performer.evaluation.checkpoint_eval import evaluate_checkpoint
from protein_performer.evaluation.perplexity import EvalOptions
from protein_performer.evaluation.tables import format_table, metrics_table
from protein_performer.evaluation.unigram import EMBEDDED_VALID
from protein_performer.jsonsafe import finite
from protein_performer.runner import file_labels, load_model, open_input

PROG = "protein-performer-eval"


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.fasta``; returns what ``metrics.json`` holds."""
    ckpt = user_path(require(cfg, "ckpt_path", f"{PROG} ckpt_path=path/to/last.ckpt"))
    paths = input_paths(cfg.fasta, default=EMBEDDED_VALID)
    options = options_from(EvalOptions, cfg, "eval")
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
    run_task(PROG, evaluate, cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
