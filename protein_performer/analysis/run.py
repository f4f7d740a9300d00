"""Model + proteins -> attention aggregates -> comparison with substitution matrices -> files.

    agg = aggregate_attention(model, source, AnalysisOptions(n_proteins=800))
    result = summarise(agg, AnalysisOptions())
    paths = write_outputs(result, out_dir)      # blosum_comparison.json, per_head.csv, ...

The model is anything with ``attention_maps(tokens [B, L], mask [B, L]) -> list of
[B, H, L, L]`` (one per layer; for FAVOR+ and AFT the implicit matrices their cores imply).
Proteins stream through in length-sorted batches; only sums are kept (see
:mod:`protein_performer.analysis.aggregate` for the method), so memory does not grow with
the number of proteins. Proteins longer than the model's context are cropped to their first
``max_length - 2`` residues (Vig et al. crop too), and the crop is counted.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from protein_performer.analysis.aggregate import (
    AMINO_ACIDS,
    AttentionAggregates,
    direct_ratio,
    head_shares,
    vig_similarity,
)
from protein_performer.analysis.substitution import compare_matrices, load_matrix
from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.source import ProteinSource
from protein_performer.devices import resolve_device
from protein_performer.jsonsafe import finite
from protein_performer.progress import Progress

log = logging.getLogger(__name__)

EMBEDDED_VALID = Path(__file__).resolve().parents[2] / "data" / "sample" / "valid.fasta.gz"
DEFAULT_MATRICES = ("BLOSUM62", "BLOSUM45", "BLOSUM80", "PAM250")
MIN_PAIRS_BEST_HEAD = 95


class AnalysisInputError(ValueError):
    """A user input cannot be analysed (missing checkpoint or file, no proteins, bad option)."""


@dataclass
class AnalysisOptions:
    """How attention is aggregated and compared (conf/analyze.yaml documents each field)."""

    n_proteins: int | None = 800
    threshold: float = 0.1
    min_total_weight: float = 100.0
    direct_log: bool = True
    direct_pseudocount: float = 1.0
    reference: str = "BLOSUM62"
    matrices: Sequence[str] = DEFAULT_MATRICES
    n_permutations: int = 1000
    seed: int = 0
    max_length: int | None = None
    attention_budget: int = 2**24  # B * heads * L * L elements per batch (all layers)
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.n_proteins is not None and self.n_proteins <= 0:
            raise AnalysisInputError(f"n_proteins must be > 0 or null (all), got {self.n_proteins}")
        if not 0.0 <= self.threshold < 1.0:
            raise AnalysisInputError(f"threshold must be in [0, 1), got {self.threshold}")
        if self.min_total_weight < 0:
            raise AnalysisInputError(f"min_total_weight must be >= 0, got {self.min_total_weight}")
        if self.direct_pseudocount < 0:
            raise AnalysisInputError(f"direct_pseudocount must be >= 0, got {self.direct_pseudocount}")
        if self.n_permutations < 0:
            raise AnalysisInputError(f"n_permutations must be >= 0, got {self.n_permutations}")
        self.matrices = list(dict.fromkeys([self.reference, *self.matrices]))
        for name in self.matrices:
            load_matrix(name)  # unknown names fail here, before any model runs


def open_proteins(path: str | Path) -> ProteinSource:
    """A FASTA file (plain or gzip) or prepared store as a ProteinSource with >= 1 protein."""
    p = Path(path)
    if not p.exists():
        raise AnalysisInputError(f"input not found: {p} (give a FASTA file or a prepared store)")
    try:
        from protein_performer.data.store import open_source  # FASTA or prepared store
    except ImportError:
        open_source = None
    if open_source is not None:
        source = open_source(p)
    else:
        from protein_performer.data.fasta import load_proteins

        source, _ = load_proteins([p])
    if len(source) == 0:
        raise AnalysisInputError(f"{p} holds no proteins")
    return source


def model_max_length(model: torch.nn.Module) -> int | None:
    for owner in (model, getattr(model, "cfg", None), getattr(model, "config", None)):
        value = getattr(owner, "max_length", None) if owner is not None else None
        if isinstance(value, int):
            return value
    return None


def _batches(lengths: np.ndarray, per_batch_elems: int) -> Iterator[np.ndarray]:
    """Length-sorted index batches with B * L^2 <= per_batch_elems (at least one protein)."""
    order = np.argsort(lengths, kind="stable")
    batch: list[int] = []
    longest = 0
    for i in order:
        l = int(lengths[i])
        if batch and (len(batch) + 1) * max(longest, l) ** 2 > per_batch_elems:
            yield np.array(batch)
            batch, longest = [], 0
        batch.append(int(i))
        longest = max(longest, l)
    if batch:
        yield np.array(batch)


@torch.no_grad()
def aggregate_attention(
    model: torch.nn.Module, source: ProteinSource, options: AnalysisOptions | None = None
) -> tuple[AttentionAggregates, dict[str, int]]:
    """Run ``model`` over the first ``n_proteins`` proteins of ``source``; sum its attention.

    Returns the aggregates and counts (``n_proteins``, ``n_residues``, ``n_cropped``).
    """
    opts = options or AnalysisOptions()
    device = resolve_device(opts.device)
    model = model.to(device).eval()
    max_length = opts.max_length or model_max_length(model)
    n = len(source) if opts.n_proteins is None else min(opts.n_proteins, len(source))
    if n == 0:
        raise AnalysisInputError("no proteins to analyse")
    lengths = np.asarray(source.lengths[:n], dtype=np.int64) + 2
    if max_length is not None:
        lengths = np.minimum(lengths, max_length)
    # One call on a 3-token protein tells the layer and head counts.
    probe = model.attention_maps(torch.tensor([[ALPHABET.cls_idx, int(ALPHABET.standard_idx[0]),
                                                ALPHABET.eos_idx]], device=device),
                                 torch.ones(1, 3, dtype=torch.bool, device=device))
    n_layers, n_heads = len(probe), int(probe[0].shape[1])
    agg = AttentionAggregates(n_layers, n_heads, opts.threshold)
    per_batch = max(1, opts.attention_budget // (n_layers * n_heads))
    counts = {"n_proteins": n, "n_residues": 0, "n_cropped": 0}
    progress = Progress(n, "attention", unit="protein", enabled=opts.progress, interval=30.0)
    try:
        for idx in _batches(lengths, per_batch):
            seqs = []
            for i in idx:
                residues = source[int(i)]
                cropped = max_length is not None and len(residues) + 2 > max_length
                toks = ALPHABET.wrap(residues, max_length)
                counts["n_cropped"] += int(cropped)
                counts["n_residues"] += len(toks) - 2
                seqs.append(toks)
            width = max(len(s) for s in seqs)
            tokens = torch.full((len(seqs), width), ALPHABET.pad_idx, dtype=torch.long)
            for row, s in enumerate(seqs):
                tokens[row, : len(s)] = torch.from_numpy(s)
            mask = tokens != ALPHABET.pad_idx
            tokens, mask = tokens.to(device), mask.to(device)
            maps = model.attention_maps(tokens, mask)
            agg.update(maps, tokens, mask)
            progress.update(len(idx))
    finally:
        progress.close()
    return agg, counts


@torch.no_grad()
def protein_attention(
    model: torch.nn.Module, residues: np.ndarray, layer: int, head: int, device: str = "auto",
    max_length: int | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The [L, L] attention map of one protein (with <cls>/<eos>) and its token labels."""
    dev = resolve_device(device)
    model = model.to(dev).eval()
    toks = ALPHABET.wrap(residues, max_length or model_max_length(model))
    tokens = torch.from_numpy(toks)[None].to(dev)
    maps = model.attention_maps(tokens, torch.ones_like(tokens, dtype=torch.bool))
    if not 0 <= layer < len(maps) or not 0 <= head < maps[0].shape[1]:
        raise AnalysisInputError(
            f"map_layer/map_head ({layer}, {head}) out of range: the model has {len(maps)} "
            f"layers x {maps[0].shape[1]} heads (0-based)"
        )
    labels = [ALPHABET.tokens[int(t)] for t in toks]
    return maps[layer][0, head].float().cpu().numpy(), labels


@dataclass
class AnalysisResult:
    """Matrices and statistics of one model (see :func:`summarise`)."""

    n_layers: int
    n_heads: int
    options: dict[str, Any]
    counts: dict[str, int]
    shares: np.ndarray  # [n_heads_total, 20] Vig shares (NaN rows: excluded heads)
    kept: np.ndarray  # [n_heads_total] bool
    total_weight: np.ndarray  # [n_heads_total]
    vig: np.ndarray  # [20, 20] Pearson similarity of amino acids over kept heads
    direct: np.ndarray  # [20, 20] observed / expected over all kept heads (log2 if direct_log)
    head_direct: np.ndarray  # [n_heads_total, 20, 20]
    references: dict[str, np.ndarray]
    overall: dict[str, dict[str, dict[str, float]]]  # mode -> matrix name -> statistics
    per_layer: list[dict[str, Any]]
    per_head: list[dict[str, Any]]
    best_head: dict[str, Any] | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def r(self) -> float:
        """The headline number: Vig similarity vs the reference, Pearson, off-diagonal."""
        return float(self.overall["vig"][self.options["reference"]]["pearson"])

    def overall_table(self):
        """pandas DataFrame: one row per (mode, matrix), the comparison statistics as columns."""
        import pandas as pd

        rows = [{"mode": mode, "matrix": name, **stats}
                for mode, by_matrix in self.overall.items() for name, stats in by_matrix.items()]
        return pd.DataFrame(rows).set_index(["mode", "matrix"])

    def warnings(self) -> list[str]:
        """Reasons the headline number may be missing or weak (printed by the CLI)."""
        out = []
        kept, total = int(self.kept.sum()), int(self.kept.size)
        if kept < 3:
            out.append(
                f"only {kept} of {total} heads kept (a head needs attention weights >= "
                f"threshold {self.options['threshold']} summing to >= min_total_weight "
                f"{self.options['min_total_weight']}): the Vig similarity needs >= 3 heads; "
                f"analyse more proteins (n_proteins), or lower threshold / min_total_weight"
            )
        return out

    def json_dict(self) -> dict[str, Any]:
        ref = self.options["reference"]
        excluded = [[int(i // self.n_heads), int(i % self.n_heads)]
                    for i in np.flatnonzero(~self.kept)]
        return finite({
            "method": ("Vig et al. 2020: per-head share of thresholded attention onto each "
                       "target amino acid; amino-acid similarity = Pearson correlation of "
                       "share vectors over kept heads; compared over amino-acid pairs. "
                       "direct: observed/expected attention between residue types "
                       "(independence given marginals), symmetrised. permutation_p: one-sided "
                       "Mantel test (amino-acid labels permuted jointly on rows and columns)."),
            "reference": ref,
            "pearson": self.r,
            "spearman": self.overall["vig"][ref]["spearman"],
            "permutation_p": self.overall["vig"][ref]["permutation_p"],
            "layers": self.n_layers,
            "heads_per_layer": self.n_heads,
            "heads": {"total": int(self.kept.size), "kept": int(self.kept.sum()),
                      "excluded": excluded},
            "warnings": self.warnings(),
            **self.counts,
            "options": self.options,
            "overall": self.overall,
            "per_layer": self.per_layer,
            "best_head": self.best_head,
            **self.extra,
        })


def summarise(
    agg: AttentionAggregates, options: AnalysisOptions | None = None,
    counts: dict[str, int] | None = None,
) -> AnalysisResult:
    """Aggregates -> Vig and direct matrices, compared with every requested matrix."""
    opts = options or AnalysisOptions()
    refs = {name: load_matrix(name) for name in opts.matrices}
    ref = refs[opts.reference]
    cmp = lambda m, r: compare_matrices(m, r, opts.n_permutations, opts.seed)  # noqa: E731
    shares, kept = head_shares(agg.target_mass, opts.min_total_weight)
    vig = vig_similarity(shares, kept)
    pc = opts.direct_pseudocount
    head_direct = direct_ratio(agg.pair_mass, opts.direct_log, pc)
    direct = direct_ratio(agg.pair_mass[kept].sum(axis=0), opts.direct_log, pc)
    overall = {"vig": {n: cmp(vig, r) for n, r in refs.items()},
               "direct": {n: cmp(direct, r) for n, r in refs.items()}}

    per_layer = []
    for layer in range(agg.n_layers):
        sl = slice(layer * agg.n_heads, (layer + 1) * agg.n_heads)
        k = kept[sl]
        entry: dict[str, Any] = {"layer": layer, "kept_heads": int(k.sum())}
        entry["vig"] = cmp(vig_similarity(shares[sl], k), ref)
        entry["direct"] = cmp(direct_ratio(agg.pair_mass[sl][k].sum(axis=0), opts.direct_log, pc),
                              ref)
        per_layer.append(entry)

    per_head = []
    for i, (layer, head) in enumerate(agg.head_labels()):
        row: dict[str, Any] = {"layer": layer, "head": head,
                               "total_weight": float(agg.total_weight[i]), "kept": bool(kept[i])}
        stats = cmp(head_direct[i], ref)
        for key in ("pearson", "spearman", "permutation_p", "pearson_diag", "spearman_diag",
                    "n_pairs"):
            row[f"direct_{key}"] = stats[key]
        row.update({f"share_{a}": shares[i, j] for j, a in enumerate(AMINO_ACIDS)})
        per_head.append(row)
    # the best head is chosen among kept heads whose direct matrix covers at least half of
    # the 190 pairs (a correlation over a handful of pairs is noise)
    candidates = [r for r in per_head if r["kept"] and np.isfinite(r["direct_pearson"])
                  and r["direct_n_pairs"] >= MIN_PAIRS_BEST_HEAD]
    best = max(candidates, key=lambda r: r["direct_pearson"]) if candidates else None
    best_head = None
    if best is not None:
        best_head = {k: best[k] for k in ("layer", "head", "total_weight", "direct_n_pairs",
                                          "direct_pearson",
                                          "direct_spearman", "direct_permutation_p",
                                          "direct_pearson_diag", "direct_spearman_diag")}
    opts_dict = {k: (list(v) if isinstance(v, (list, tuple)) else v)
                 for k, v in asdict(opts).items()}
    return AnalysisResult(
        n_layers=agg.n_layers, n_heads=agg.n_heads, options=opts_dict,
        counts=dict(counts or {"n_proteins": agg.n_proteins,
                               "n_residues": int(agg.residue_counts.sum())}),
        shares=shares, kept=kept, total_weight=agg.total_weight, vig=vig, direct=direct,
        head_direct=head_direct, references=refs, overall=overall, per_layer=per_layer,
        per_head=per_head, best_head=best_head,
    )


def _matrix_frame(m: np.ndarray):
    import pandas as pd

    return pd.DataFrame(m, index=list(AMINO_ACIDS), columns=list(AMINO_ACIDS))


def write_outputs(result: AnalysisResult, out_dir: str | Path,
                  agg: AttentionAggregates | None = None) -> dict[str, str]:
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


def load_model(ckpt_path: str | Path) -> torch.nn.Module:
    """The model of a training checkpoint (:func:`protein_performer.model.checkpoint.load_lm`)."""
    p = Path(ckpt_path)
    if not p.is_file():
        raise AnalysisInputError(
            f"checkpoint not found: {p} (set ckpt_path= to a .ckpt written by "
            f"protein-performer-train, e.g. <run dir>/checkpoints/last.ckpt)"
        )
    from protein_performer.model.checkpoint import load_lm

    model = load_lm(p).model
    model.eval()
    return model


def _protein_index(source: ProteinSource, which: int | str) -> int:
    if isinstance(which, str) and not which.lstrip("-").isdigit():
        for i in range(len(source)):
            if source.accession(i) == which:
                return i
        raise AnalysisInputError(f"map_protein: no protein with accession {which!r} in the input")
    i = int(which)
    if not 0 <= i < len(source):
        raise AnalysisInputError(f"map_protein must be in [0, {len(source)}), got {i}")
    return i


def analyze_model(
    model: torch.nn.Module,
    source: ProteinSource,
    out_dir: str | Path,
    options: AnalysisOptions | None = None,
    *,
    figures: bool = True,
    map_protein: int | str = 0,
    map_layer: int | None = None,
    map_head: int | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[AnalysisResult, dict[str, Any]]:
    """The whole analysis of one model: aggregate, summarise, write files and figures.

    Returns the result and the paths written (``blosum_comparison``, ``per_head``, figures...).
    """
    opts = options or AnalysisOptions()
    index = _protein_index(source, map_protein) if figures else 0
    agg, counts = aggregate_attention(model, source, opts)
    result = summarise(agg, opts, counts)
    result.extra.update(extra or {})
    files: dict[str, Any] = {}
    if figures:
        from protein_performer.analysis.figures import write_figures

        best = result.best_head or {"layer": 0, "head": 0}
        layer = best["layer"] if map_layer is None else int(map_layer)
        head = best["head"] if map_head is None else int(map_head)
        matrix, labels = protein_attention(model, source[index], layer, head, opts.device,
                                           opts.max_length)
        title = f"{source.accession(index)}: layer {layer}, head {head}"
        files.update(write_figures(result, out_dir, (matrix, labels, layer, head, title)))
        result.extra["attention_map"] = {"protein": source.accession(index), "layer": layer,
                                         "head": head}
    files.update(write_outputs(result, out_dir, agg))
    return result, files
