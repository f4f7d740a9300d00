"""``protein-performer-embed``: embeddings of a checkpoint for FASTA files (restartable).

    protein-performer-embed ckpt_path=run/last.ckpt 'fasta=[proteins.fasta.gz]' 'layers=[-1]'

Thin: opens the inputs, loads the checkpoint, and calls
:func:`protein_performer.inference.embed.embed_source` per file into ``<out>/<file label>/``.
Bad input: one line, exit status 2.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from protein_performer.cli.config import CONF_DIR, user_path
from protein_performer.cli.evaluate import _input_paths
from protein_performer.cli.score import _required, run_or_exit

PROG = "protein-performer-embed"


def embed(cfg: DictConfig) -> dict[str, str]:
    """Embed every protein of ``cfg.fasta``; returns file label -> output directory."""
    from protein_performer.devices import resolve_device
    from protein_performer.runner import file_labels, open_input
    from protein_performer.inference.embed import embed_source, long_protein_policy
    from protein_performer.inference.embedding_store import EmbeddingStore
    from protein_performer.runner import load_model

    ckpt = user_path(_required(cfg, "ckpt_path", "ckpt_path=path/to/last.ckpt"))
    fasta = OmegaConf.to_container(cfg.fasta) if OmegaConf.is_config(cfg.fasta) else cfg.fasta
    paths = _input_paths(fasta)
    layers = [int(i) for i in cfg.layers]
    sources = {label: open_input(p) for label, p in zip(file_labels(paths), paths)}
    loaded = load_model(ckpt, resolve_device(str(cfg.device)))
    out = user_path(str(cfg.out)) if cfg.out else Path(cfg.paths.output_dir)
    m = loaded.model.cfg
    settings = {
        "checkpoint": str(ckpt),
        "layers": layers,
        "max_length": m.max_length,
        "position": m.position,
        "attention": m.attention.kind,
        "long_proteins": long_protein_policy(loaded.model),
    }
    result = {}
    for label, source in sources.items():
        store = EmbeddingStore(out / label, settings)
        try:
            n = embed_source(
                loaded.model, source, store, layers, int(cfg.batch_tokens), bool(cfg.progress)
            )
        finally:
            store.close()
        print(f"{label}: embedded {n} proteins ({len(source) - n} already done) -> {out / label}")
        result[label] = str(out / label)
    return result


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="embed")
def _hydra_main(cfg: DictConfig) -> None:
    run_or_exit(PROG, embed, cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
