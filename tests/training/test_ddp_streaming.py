"""2-process DDP on CPU (gloo) training a whole epoch from a streamed shard set (data=streaming):
each rank streams its own share; unequal steps per rank would hang the last all-reduce."""

from __future__ import annotations

import json

import pytest
from common import SAMPLE_VALID, assert_plausible_perplexity, run_train_cli

# pytest puts this folder on sys.path (no __init__.py): the DDP test's tiny config
from test_ddp import TINY  # noqa: E402


@pytest.mark.slow
def test_ddp_two_processes_stream_one_epoch(tmp_path):
    from protein_performer.data.storage.shard_writer import write_shards

    # 500 proteins in 8 shards; 2 ranks x 2 workers of 125 proteins: 8 batches of <= 16 each
    write_shards(
        SAMPLE_VALID, tmp_path / "shards", shard_bytes=20_000, block_proteins=50, progress=False
    )
    settings = [
        o
        for o in TINY
        if not o.startswith(("trainer.max_steps=", "data.num_workers=", "data.batch_size="))
    ]
    run = tmp_path / "run"
    run_train_cli(
        [
            "data=streaming",
            *settings,
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.precision=32-true",
            "trainer.max_epochs=1",
            "trainer.max_steps=-1",
            "trainer.val_check_interval=8",
            "data.batch_size=16",
            "data.num_workers=2",
            f"data.train=[{tmp_path / 'shards'}]",
            f"data.valid=[{tmp_path / 'shards'}]",
            "data.test=null",
            "data.test_ood=null",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
        timeout=500,
    )
    assert_plausible_perplexity(
        json.loads((run / "metrics.json").read_text()).get("valid/perplexity")
    )
    import torch

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 16  # one epoch of each rank's share (2 x 8 batches)
    position = ckpt["ProteinDataModule"]["train_sampler"]
    assert (position["epoch"], position["batches_consumed"]) == (1, 0)  # the finished epoch
    assert (position["world_size"], position["num_workers"]) == (2, 2)
