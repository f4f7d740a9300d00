"""protein-performer-embed: a tiny checkpoint on the embedded sample; a rerun skips all."""

from __future__ import annotations

import csv

import numpy as np
from test_evaluate import make_checkpoint  # tests/cli is on sys.path (pytest rootdir import)

from protein_performer.cli.config import compose_train
from protein_performer.cli.embed import embed


def test_embed_sample_and_rerun_skips(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "mlm.ckpt", "mlm", None)
    cfg = compose_train(
        [f"ckpt_path={ckpt}", "device=cpu", "progress=false", "layers=[0,-1]"],
        output_dir=tmp_path / "run",
        config_name="embed",
    )
    (out,) = embed(cfg).values()
    with open(f"{out}/index.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len({r["index"] for r in rows}) == len(rows) > 0
    r = rows[0]
    z = np.load(f"{out}/{r['file']}")
    assert z["layer0"].shape == (int(r["length"]), 16)
    np.testing.assert_allclose(z["mean_layer-1"], z["layer-1"].mean(0), rtol=1e-5, atol=1e-6)
    embed(cfg)
    assert f"embedded 0 proteins ({len(rows)} already done)" in capsys.readouterr().out


def test_long_proteins_whole_or_windows_say_so(tmp_path):
    """index.csv and settings.json name the mode: a rotary FAVOR+ checkpoint runs a protein
    longer than its 64 tokens whole (whole_long), the learned-position one in windows."""
    import json

    fasta = tmp_path / "p.fasta"
    fasta.write_text(">short\nMKTAYIAK\n>long\n" + "ACDEFGHIKLMNPQRSTVWY" * 5 + "\n")
    for position, attention, mode in [
        ("rotary", "favor_softmax", "whole_long"),
        ("learned", "exact", "windows"),
    ]:
        ckpt = make_checkpoint(tmp_path / f"{position}.ckpt", "mlm", None, position, attention)
        cfg = compose_train(
            [
                f"ckpt_path={ckpt}",
                f"fasta=[{fasta}]",
                "device=cpu",
                "progress=false",
                f"out={tmp_path / position}",
            ],
            output_dir=tmp_path / "run",
            config_name="embed",
        )
        (out,) = embed(cfg).values()
        with open(f"{out}/index.csv", newline="") as f:
            modes = {r["accession"]: r["mode"] for r in csv.DictReader(f)}
        assert modes == {"short": "whole", "long": mode}
        settings = json.loads(open(f"{out}/settings.json").read())
        assert settings["long_proteins"].startswith(mode)
