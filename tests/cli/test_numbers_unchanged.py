"""Every number the model-using commands print stays what it was before the runner floor
(issue #26): eval metrics, the analyze command's BLOSUM figures and the score command's
outputs, on tiny checkpoints written here from seeded weights.

PINNED holds the values the code at main bd0a13c (before the floor) computed from exactly
these checkpoints and inputs; rerun ``python tests/cli/test_numbers_unchanged.py`` to print
the current values in the same form.
"""

from __future__ import annotations

import gzip
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from protein_performer.attention import AttentionConfig
from protein_performer.cli.config import compose_train
from protein_performer.model import ModelConfig, PerformerLM
from protein_performer.objective import Objective

REPO = Path(__file__).resolve().parents[2]
SAMPLE_VALID = REPO / "data/sample/valid.fasta.gz"
WT = "MKTAYIAKQRQISFVKSHFSRQ"
MUTANTS = ["K2R", "A4G:K8R", "Y5W", "I6L", "Q11E", "S17T:R21K"]
MEASURED = [0.1, -0.5, 0.3, 0.0, 0.2, -0.1]
# objective -> (attention kind, positions): both walks, both position families
MODELS = {"mlm": ("favor_relu", "rotary"), "clm": ("exact", "learned")}


def write_checkpoint(path: Path, objective: str) -> Path:
    """A protein-performer checkpoint of a 2-layer model whose weights are seeded draws of
    N(0, 0.2) (larger than the init, so attention and predictions are far from uniform)."""
    kind, position = MODELS[objective]
    obj = Objective(objective)
    cfg = ModelConfig(
        d_model=32,
        n_layers=2,
        n_heads=2,
        d_ff=64,
        max_length=48,
        dropout=0.0,
        causal=obj.causal,
        position=position,
        attention=AttentionConfig(kind=kind, nb_features=16),
    )
    torch.manual_seed(0)
    model = PerformerLM(cfg)
    g = torch.Generator().manual_seed(1)
    state = {}
    for name, value in model.state_dict().items():
        if value.is_floating_point() and "projection" not in name:
            value = torch.randn(value.shape, generator=g) * 0.2
        state[f"model.{name}"] = value
    freqs = torch.rand(31, generator=g).double()
    freqs[:6] = 0.0
    hp = {
        "model": cfg.to_dict(),
        **obj.to_hparams(),
        "residue_frequencies": (freqs / freqs.sum()).tolist(),
    }
    torch.save({"hyper_parameters": hp, "state_dict": state}, path)
    return path


def write_inputs(d: Path) -> tuple[Path, Path]:
    """The first 8 proteins of the embedded validation set (most longer than the 48-token
    window) and a mutations CSV with measured effects."""
    lines = gzip.open(SAMPLE_VALID, "rt").read().split(">")[1:9]
    fasta = d / "few.fasta"
    fasta.write_text("".join(">" + rec for rec in lines))
    csv = d / "dms.csv"
    pd.DataFrame({"mutant": MUTANTS, "measured": MEASURED}).to_csv(csv, index=False)
    return fasta, csv


def compute(d: Path) -> dict[str, float]:
    """Run eval, analyze and score (both modes) on both checkpoints; the numbers, flat."""
    from protein_performer.cli.analyze import analyze
    from protein_performer.cli.evaluate import evaluate
    from protein_performer.cli.score import score

    fasta, csv = write_inputs(d)
    out: dict[str, float] = {}
    for objective in MODELS:
        ckpt = write_checkpoint(d / f"{objective}.ckpt", objective)

        def cfg(name: str, *overrides: str, tag: str = "", objective: str = objective):
            run = d / f"{objective}-{name}{tag}"
            return compose_train([*overrides], output_dir=run, config_name=name)

        extra = ["pseudo_perplexity=true", "n_maskings=2"] if objective == "mlm" else []
        metrics = evaluate(
            cfg(
                "eval",
                f"ckpt_path={ckpt}",
                f"fasta=[{fasta}]",
                "device=cpu",
                "progress=false",
                *extra,
            )
        )
        for key, value in sorted(metrics["files"]["few.fasta"].items()):
            if isinstance(value, float):
                out[f"{objective}/eval/{key}"] = value
        comparison = analyze(
            cfg(
                "analyze",
                f"ckpt_path={ckpt}",
                f"fasta={fasta}",
                "n_proteins=8",
                "n_permutations=50",
                "min_total_weight=1",
                "threshold=0.03",
                "figures=false",
                "favor_error=true",
                "favor_error_proteins=4",
                "favor_error_features=[16,64]",
                "device=cpu",
                "progress=false",
            )
        )
        for mode in ("vig", "direct"):
            for stat in ("pearson", "spearman", "permutation_p"):
                out[f"{objective}/analyze/{mode}/{stat}"] = comparison["overall"][mode]["BLOSUM62"][
                    stat
                ]
            out[f"{objective}/analyze/{mode}/control_pearson"] = comparison["control"][mode][
                "control_pearson"
            ]
        favor = pd.read_csv(d / f"{objective}-analyze" / "favor_error.csv")
        for m, error in favor.groupby("nb_features")["output_rel_error"].mean().items():
            out[f"{objective}/analyze/favor_error/m={m}"] = float(error)
        out[f"{objective}/analyze/BLOSUM45/vig/pearson"] = comparison["overall"]["vig"]["BLOSUM45"][
            "pearson"
        ]
        proteins = score(
            cfg(
                "score",
                f"ckpt_path={ckpt}",
                f"fasta=[{fasta}]",
                "device=cpu",
                "progress=false",
                "batch_tokens=512",
            )
        )
        table = pd.read_csv(proteins["csv"])
        for row in table.itertuples():
            out[f"{objective}/score/{row.accession}/log_likelihood"] = float(row.log_likelihood)
        out[f"{objective}/score/perplexity"] = proteins["files"]["few.fasta"]["perplexity"]
        variants = score(
            cfg(
                "score",
                f"ckpt_path={ckpt}",
                f"wild_type={WT}",
                f"mutations={csv}",
                "device=cpu",
                tag="-variants",
            )
        )
        for mutant, value in zip(MUTANTS, pd.read_csv(variants["csv"])["score"]):
            out[f"{objective}/variant/{mutant}"] = float(value)
        out[f"{objective}/variant/spearman"] = variants["spearman"]
    return out


PINNED: dict[str, float] = {
    "mlm/eval/accuracy": 0.07400194741966894,
    "mlm/eval/accuracy_std": 0.00470105086969824,
    "mlm/eval/mask_prob": 0.15,
    "mlm/eval/nll_per_token": 3.4301713799083826,
    "mlm/eval/nll_per_token_std": 0.003574094412814938,
    "mlm/eval/perplexity": 30.881934839348613,
    "mlm/eval/perplexity_std": 0.11036556219401776,
    "mlm/eval/pseudo_accuracy": 0.07468391649514848,
    "mlm/eval/pseudo_nll_per_token": 3.429882922757201,
    "mlm/eval/pseudo_perplexity": 30.87302800908308,
    "mlm/eval/unigram_accuracy": 0.0,
    "mlm/eval/unigram_nll_per_token": 3.6017006324553287,
    "mlm/eval/unigram_perplexity": 36.660527542800274,
    "mlm/analyze/vig/pearson": -0.04234104451571869,
    "mlm/analyze/vig/spearman": -0.07966995414954431,
    "mlm/analyze/vig/permutation_p": 0.7450980392156863,
    "mlm/analyze/vig/control_pearson": 0.17748024948058977,
    "mlm/analyze/direct/pearson": 0.02812673209732637,
    "mlm/analyze/direct/spearman": 0.014387138634985407,
    "mlm/analyze/direct/permutation_p": 0.4117647058823529,
    "mlm/analyze/direct/control_pearson": -0.024197752951453204,
    "mlm/analyze/favor_error/m=16": 0.018893958045316017,
    "mlm/analyze/favor_error/m=64": 0.010551685193943944,
    "mlm/analyze/BLOSUM45/vig/pearson": -0.05437624882917183,
    "mlm/score/A0AMC4/log_likelihood": -800.8943693637848,
    "mlm/score/A0KGJ2/log_likelihood": -1817.2083353996277,
    "mlm/score/A0M0E2/log_likelihood": -1572.2230169773102,
    "mlm/score/A0M4T1/log_likelihood": -1136.7134900093079,
    "mlm/score/A0PUJ0/log_likelihood": -769.7018690109253,
    "mlm/score/A0QYV1/log_likelihood": -3791.9416410923004,
    "mlm/score/A0RI42/log_likelihood": -1424.8112969398499,
    "mlm/score/A0RWW9/log_likelihood": -351.53780150413513,
    "mlm/score/perplexity": 30.87302800908308,
    "mlm/variant/K2R": -0.1480676494538784,
    "mlm/variant/A4G:K8R": -0.4704139083623886,
    "mlm/variant/Y5W": 0.332030825316906,
    "mlm/variant/I6L": -0.33759213984012604,
    "mlm/variant/Q11E": 0.2443365901708603,
    "mlm/variant/S17T:R21K": 0.4161574952304363,
    "mlm/variant/spearman": 0.4285714285714286,
    "clm/eval/accuracy": 0.07450865356409504,
    "clm/eval/nll_per_token": 3.4982567514692033,
    "clm/eval/perplexity": 33.057773784021876,
    "clm/eval/unigram_accuracy": 0.036080962158990905,
    "clm/eval/unigram_nll_per_token": 3.7819170338939,
    "clm/eval/unigram_perplexity": 43.90011913654246,
    "clm/analyze/vig/pearson": -0.035349686611107906,
    "clm/analyze/vig/spearman": -0.018474749673958568,
    "clm/analyze/vig/permutation_p": 0.5686274509803921,
    "clm/analyze/vig/control_pearson": 0.13394181151665685,
    "clm/analyze/direct/pearson": 0.05702083729070198,
    "clm/analyze/direct/spearman": 0.009705616495382447,
    "clm/analyze/direct/permutation_p": 0.23529411764705882,
    "clm/analyze/direct/control_pearson": 0.05153493644876721,
    "clm/analyze/favor_error/m=16": 0.014119022775400175,
    "clm/analyze/favor_error/m=64": 0.008249640880098262,
    "clm/analyze/BLOSUM45/vig/pearson": -0.023309321112542296,
    "clm/score/A0AMC4/log_likelihood": -821.0121626853943,
    "clm/score/A0KGJ2/log_likelihood": -1862.287805557251,
    "clm/score/A0M0E2/log_likelihood": -1597.0269043445587,
    "clm/score/A0M4T1/log_likelihood": -1164.2084321975708,
    "clm/score/A0PUJ0/log_likelihood": -789.0083615779877,
    "clm/score/A0QYV1/log_likelihood": -3871.436911344528,
    "clm/score/A0RI42/log_likelihood": -1457.2748081684113,
    "clm/score/A0RWW9/log_likelihood": -363.3018798828125,
    "clm/score/perplexity": 33.057773784021876,
    "clm/variant/K2R": -0.08412499327681644,
    "clm/variant/A4G:K8R": -0.6469133956452424,
    "clm/variant/Y5W": -0.3480528316788991,
    "clm/variant/I6L": -0.30084990136333545,
    "clm/variant/Q11E": 0.15507629098843267,
    "clm/variant/S17T:R21K": 0.1258332685999335,
    "clm/variant/spearman": 0.2571428571428572,
}


def test_numbers_equal_those_before_the_floor(tmp_path):
    got = compute(tmp_path)
    assert sorted(got) == sorted(PINNED)
    for key, want in PINNED.items():
        if want is None or math.isnan(want):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(want, rel=1e-7, abs=1e-12), key


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        values = compute(Path(tmp))
    print("PINNED: dict[str, float] = {")
    for key, value in values.items():
        print(f"    {key!r}: {value!r},")
    print("}", file=sys.stdout)
