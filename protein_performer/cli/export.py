"""``protein-performer-export``: a checkpoint -> a Hugging Face style folder.

    protein-performer-export ckpt_path=run/checkpoints/last.ckpt out=exported/
    protein-performer-export ckpt_path=finetune/checkpoints/best.ckpt out=DIR lora=adapters

Thin: :func:`protein_performer.finetune.export.export_checkpoint` does the work.
Bad input: one line, exit status 2.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from protein_performer.cli.config import CONF_DIR, ConfigError, user_path
from protein_performer.cli.task import require, run_task

PROG = "protein-performer-export"


def export(cfg: DictConfig) -> Path:
    """Export ``cfg.ckpt_path`` into ``cfg.out``; returns the folder."""
    from protein_performer.finetune.export import export_checkpoint

    example = "ckpt_path=run/checkpoints/last.ckpt out=exported/"
    ckpt = user_path(require(cfg, "ckpt_path", f"{PROG} {example}"))
    out = user_path(require(cfg, "out", f"{PROG} {example}"))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={out} is a file: give a folder to write the export into")
    folder = export_checkpoint(
        ckpt, out, license=str(cfg.license), name=cfg.get("name"), lora=str(cfg.lora)
    )
    print(f"exported {ckpt} -> {folder}")
    return folder


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="export")
def _hydra_main(cfg: DictConfig) -> None:
    run_task(PROG, export, cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
