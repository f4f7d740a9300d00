"""The closing summary of `make demo`: what was measured and where it was written.

Usage: python scripts/demo_summary.py outputs/demo
Reads train/metrics.json, eval/metrics.json and analyze/blosum_comparison.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _read(path: Path) -> dict:
    if not path.is_file():
        sys.exit(f"demo_summary: {path} is missing: did the step that writes it fail?")
    return json.loads(path.read_text())


def _fmt(x: object, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def main(demo_dir: str) -> None:
    root = Path(demo_dir)
    train = _read(root / "train" / "metrics.json")
    evaluation = _read(root / "eval" / "metrics.json")
    analysis = _read(root / "analyze" / "blosum_comparison.json")

    print("\n=== protein-performer demo ===")
    print(
        f"trained: {root / 'train' / 'checkpoints' / 'last.ckpt'} "
        f"(valid perplexity during training {_fmt(train.get('valid/perplexity'), '.2f')})"
    )
    for label, m in evaluation["files"].items():
        print(
            f"{label}: perplexity {_fmt(m.get('perplexity'), '.2f')} "
            f"(unigram baseline {_fmt(m.get('unigram_perplexity'), '.2f')}), "
            f"accuracy {_fmt(m.get('accuracy'), '.3f')}, "
            f"{m.get('n_sequences')} proteins, {m.get('n_tokens')} scored tokens"
        )
    direct = analysis.get("overall", {}).get("direct", {}).get(analysis["reference"], {})
    print(
        f"attention vs {analysis['reference']}: Pearson r {_fmt(analysis.get('pearson'))} "
        f"(Vig et al. similarity; permutation p {_fmt(analysis.get('permutation_p'), '.3g')}), "
        f"direct mode r {_fmt(direct.get('pearson'))}"
    )
    control = analysis.get("control", {}).get("vig")
    if control:
        verdict = "beats" if control["beats_control"] else "does NOT beat"
        print(
            f"  the same model at random init (the null): r {_fmt(control['control_pearson'])} "
            f"(permutation p {_fmt(control['control_permutation_p'], '.3g')}); the trained "
            f"model {verdict} its control at p < 0.01"
        )
    favor = root / "analyze" / "favor_error.csv"
    if favor.is_file():
        import pandas as pd

        mean = pd.read_csv(favor).groupby("nb_features")["output_rel_error"].mean()
        print(
            "FAVOR+ vs exact softmax on the model's own q, k (relative error of the output): "
            + ", ".join(f"m={m} {e:.3f}" for m, e in mean.items())
        )
    for warning in analysis.get("warnings", []):
        print(f"  note: {warning}")
    print(f"metrics:  {root / 'eval' / 'metrics.json'}")
    print(
        f"figures:  {root / 'analyze'}/*.png (with_control: trained | random init | BLOSUM62; "
        f"heatmaps, scatter, layer x head grid, map, favor_error)"
    )
    print(f"analysis: {root / 'analyze' / 'blosum_comparison.json'}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
