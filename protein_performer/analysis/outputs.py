"""One model's analysis as files: blosum_comparison.json, per-head and per-layer CSV, the
20 x 20 matrices as CSV and the aggregates (figures: :mod:`~.figures`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from protein_performer.analysis.aggregate import AMINO_ACIDS, AttentionAggregates
from protein_performer.analysis.summary import AnalysisResult


def _matrix_frame(m: np.ndarray):
    import pandas as pd

    return pd.DataFrame(m, index=list(AMINO_ACIDS), columns=list(AMINO_ACIDS))


def write_outputs(
    result: AnalysisResult, out_dir: str | Path, agg: AttentionAggregates | None = None
) -> dict[str, str]:
    """blosum_comparison.json, per_head.csv, per_layer.csv, the 20 x 20 matrices as CSV
    (alphabetical order, rows = query / first amino acid) and, given ``agg``, aggregates.npz."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    per_head = out / "per_head.csv"
    pd.DataFrame(result.per_head).to_csv(per_head, index=False)
    files["per_head"] = str(per_head)
    rows = []
    for entry in result.per_layer:
        row = {"layer": entry["layer"], "kept_heads": entry["kept_heads"]}
        for mode in ("vig", "direct"):
            row.update({f"{mode}_{k}": v for k, v in entry[mode].items()})
        rows.append(row)
    per_layer = out / "per_layer.csv"
    pd.DataFrame(rows).to_csv(per_layer, index=False)
    files["per_layer"] = str(per_layer)
    for name, m in (("vig_similarity", result.vig), ("direct_ratio", result.direct)):
        path = out / f"{name}.csv"
        _matrix_frame(m).to_csv(path)
        files[name] = str(path)
    ref = result.options["reference"]
    path = out / f"{ref}.csv"
    _matrix_frame(result.references[ref]).to_csv(path)
    files["reference"] = str(path)
    if agg is not None:
        path = out / "aggregates.npz"
        np.savez(path, **agg.to_dict())
        files["aggregates"] = str(path)
    data = result.json_dict()
    data["files"] = dict(files, blosum_comparison=str(out / "blosum_comparison.json"))
    (out / "blosum_comparison.json").write_text(json.dumps(data, indent=2) + "\n")
    files["blosum_comparison"] = str(out / "blosum_comparison.json")
    return files
