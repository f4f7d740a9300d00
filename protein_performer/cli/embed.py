"""``protein-performer-embed``: embeddings of a checkpoint for FASTA files (restartable).

    protein-performer-embed ckpt_path=run/last.ckpt 'fasta=[proteins.fasta.gz]' 'layers=[-1]'

Thin: opens the inputs, loads the checkpoint, and calls
:func:`protein_performer.inference.embed.embed_source` per file into ``<out>/<file label>/``.
Bad input: one line, exit status 2.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from protein_performer.cli.config import CONF_DIR, user_path
from protein_performer.cli.task import input_paths, require, run_task
from protein_performer.evaluation.unigram import EMBEDDED_VALID
from protein_performer.inference.embed import embed_source, long_protein_policy
from protein_performer.inference.embedding_store import EmbeddingStore
from protein_performer.runner import Engine, file_labels, load_model, open_input

PROG = "protein-performer-embed"


def embed(cfg: DictConfig) -> dict[str, str]:
    """Embed every protein of ``cfg.fasta``; returns file label -> output directory."""
    ckpt = user_path(require(cfg, "ckpt_path", f"{PROG} ckpt_path=path/to/last.ckpt"))
    paths = input_paths(cfg.fasta, default=EMBEDDED_VALID)
    layers = [int(i) for i in cfg.layers]
    sources = {label: open_input(p) for label, p in zip(file_labels(paths), paths)}
    loaded = load_model(ckpt)
    engine = Engine(loaded.model, str(cfg.device))  # the one device decision
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
                engine, source, store, layers, int(cfg.batch_tokens), bool(cfg.progress)
            )
        finally:
            store.close()
        print(f"{label}: embedded {n} proteins ({len(source) - n} already done) -> {out / label}")
        result[label] = str(out / label)
    return result


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="embed")
def _hydra_main(cfg: DictConfig) -> None:
    run_task(PROG, embed, cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
