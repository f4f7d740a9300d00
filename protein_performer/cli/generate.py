"""``protein-performer-generate``: sample proteins from a causal checkpoint into a FASTA file.

    protein-performer-generate ckpt_path=run/last.ckpt n=10 prompt=MK temperature=0.8 top_p=0.9

Bad inputs (missing checkpoint, a masked-LM checkpoint, a bad prompt or option) end with a
one-line error and exit status 2.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from protein_performer.cli.config import CONF_DIR, ConfigError, user_path
from protein_performer.cli.task import options_from, require, run_task
from protein_performer.data.fasta_writer import open_output, write_fasta
from protein_performer.inference.generate import SamplingOptions, fasta_header, generate
from protein_performer.progress import Progress
from protein_performer.runner import load_model

PROG = "protein-performer-generate"


def run_generate(cfg: DictConfig) -> Path:
    """Sample ``cfg.n`` sequences from ``cfg.ckpt_path``; returns the FASTA path written."""
    ckpt_value = require(cfg, "ckpt_path", f"{PROG} ckpt_path=path/to/last.ckpt")
    opt = options_from(SamplingOptions, cfg, "generate")
    prompt = "" if cfg.prompt is None else str(cfg.prompt)
    out_dir = Path(cfg.paths.output_dir)
    path = user_path(str(cfg.output)) if cfg.output else out_dir / "generated.fasta"
    loaded = load_model(user_path(ckpt_value), str(cfg.device))
    if not loaded.objective.causal:
        raise ConfigError(
            f"{ckpt_value}: generation needs a causal model (objective=clm); this "
            f"checkpoint was trained with objective={loaded.objective}"
        )
    n = int(cfg.n)
    progress = Progress(n, "generate", unit="protein", enabled=bool(cfg.progress), interval=30.0)
    items = generate(
        loaded.model,
        n,
        opt,
        prompt=prompt,
        batch_size=int(cfg.batch_size),
        progress=progress.update,
    )
    progress.close()
    with open_output(path) as handle:
        for i, item in enumerate(items):
            write_fasta(handle, fasta_header(i, item, opt, prompt), item.residues.encode())
    print(f"wrote {n} sequences to {path}")
    return path


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="generate")
def _hydra_main(cfg: DictConfig) -> None:
    run_task(PROG, run_generate, cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
