"""``protein-performer-generate``: sample proteins from a causal checkpoint into a FASTA file.

    protein-performer-generate ckpt_path=run/last.ckpt n=10 prompt=MK temperature=0.8 top_p=0.9

Bad inputs (missing checkpoint, a masked-LM checkpoint, a bad prompt or option) end with a
one-line error and exit status 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from protein_performer.cli.config import CONF_DIR, user_path

PROG = "protein-performer-generate"


def run_generate(cfg: DictConfig) -> Path:
    """Sample ``cfg.n`` sequences from ``cfg.ckpt_path``; returns the FASTA path written."""
    from protein_performer.data.fasta_writer import open_output, write_fasta
    from protein_performer.devices import resolve_device
    from protein_performer.inference.generate import SamplingOptions, fasta_header, generate
    from protein_performer.progress import Progress
    from protein_performer.runner import load_model

    try:
        ckpt_value = cfg.ckpt_path
    except MissingMandatoryValue:
        ckpt_value = None
    if not ckpt_value:
        raise ValueError(f"ckpt_path is required: {PROG} ckpt_path=path/to/last.ckpt")
    opt = SamplingOptions(
        temperature=float(cfg.temperature),
        top_k=int(cfg.top_k),
        top_p=float(cfg.top_p),
        max_new_tokens=int(cfg.max_new_tokens),
        seed=int(cfg.seed),
    )
    prompt = "" if cfg.prompt is None else str(cfg.prompt)
    out_dir = Path(cfg.paths.output_dir)
    path = user_path(str(cfg.output)) if cfg.output else out_dir / "generated.fasta"
    loaded = load_model(user_path(str(ckpt_value)), resolve_device(str(cfg.device)))
    if not loaded.objective.causal:
        raise ValueError(
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
    try:
        run_generate(cfg)
    except (ValueError, FileNotFoundError) as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{PROG}: error: {err}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
