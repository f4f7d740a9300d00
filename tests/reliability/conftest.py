"""Fixtures of the fault battery: a tiny trained checkpoint and bad inputs made from it."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from common import SAMPLE_DATA, SAMPLE_VALID, TINY_RUN


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory) -> Path:
    """last.ckpt of a one-step masked-LM run of the tiny model (TINY_RUN) on the sample."""
    import torch

    from protein_performer.cli.config import compose_train
    from protein_performer.cli.train import train

    out = tmp_path_factory.mktemp("tiny_mlm")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(
            compose_train(
                [*TINY_RUN, *SAMPLE_DATA, "trainer.max_steps=1", "logger=none", "test=false"],
                output_dir=out,
            )
        )
    finally:
        torch.set_num_threads(threads)
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    return ckpt


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory, tiny_mlm) -> dict[str, Path]:
    """Damaged files: empty (0 bytes) and truncated checkpoints and FASTA, a FASTA that is
    not gzip inside, empty and header-only mutation CSVs."""
    d = tmp_path_factory.mktemp("bad")
    data = tiny_mlm.read_bytes()
    files = {
        "empty": b"",
        "truncated.ckpt": data[: len(data) // 2],
        "truncated.fasta.gz": SAMPLE_VALID.read_bytes()[:300],
        "header_only.csv": b"mutant,measured\n",
        "plain.fasta": gzip.decompress(SAMPLE_VALID.read_bytes())[:2000].rsplit(b"\n>", 1)[0]
        + b"\n",
    }
    paths = {}
    for name, content in files.items():
        paths[name] = d / name
        paths[name].write_bytes(content)
    paths["empty.fasta"] = d / "empty.fasta"
    paths["empty.fasta"].write_bytes(b"")
    paths["empty.csv"] = d / "empty.csv"
    paths["empty.csv"].write_bytes(b"")
    paths["empty_dir"] = d / "empty_dir"
    paths["empty_dir"].mkdir()
    return paths
