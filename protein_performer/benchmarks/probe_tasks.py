"""Linear probes on the aaanalysis benchmark sets (``<data_dir>/aaanalysis/*.tsv``).

``location`` (SEQ_LOCATION: cytoplasm 1 vs plasma membrane 0) and ``soluble`` (SEQ_SOLUBLE)
are per-protein tasks: mean-pooled hidden states vs the amino-acid composition baseline.
``disorder`` (AA_LDR: disordered 1) and ``sa`` (AA_SA: exposed 1) are per-residue tasks:
hidden states vs one-hot residue windows. Each file has columns ``entry, gene, sequence,
label``; per-residue labels are comma-separated, one per residue.

The split is fixed by the entry names (:func:`~.probes.held_out`, 20% test); per-residue
tasks split by protein and resample proteins for their CIs. Every predictor (``model``,
``random_init``, the sequence-only baseline, ``majority_class``) is fitted on the same
training rows and scored on the same test rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from protein_performer.benchmarks.probes import (
    aa_composition,
    held_out,
    onehot_windows,
    probe_table,
)
from protein_performer.benchmarks.representations import hidden_states
from protein_performer.benchmarks.structure_tasks import model_and_twin
from protein_performer.benchmarks.task_types import Task, TaskError, TaskInputs
from protein_performer.errors import InputError
from protein_performer.runner import Engine, load_model

log = logging.getLogger(__name__)
AAANALYSIS_DIR = "aaanalysis"  # below data_dir, as fetch-benchmarks writes it


class LabelledSetError(InputError):
    """A benchmark TSV lacks a column or has labels that do not fit its sequences."""


@dataclass(frozen=True)
class LabelledSet:
    """Proteins of one benchmark file: names, sequences and labels (int per protein, or an
    int array per residue)."""

    names: list[str]
    sequences: list[str]
    labels: list


def read_labelled(path: Path, per_residue: bool) -> LabelledSet:
    """An aaanalysis benchmark TSV (``entry, sequence, label``), checked."""
    if not path.is_file():
        raise LabelledSetError(
            f"{path} not found (run protein-performer-data fetch-benchmarks --out DATA_DIR)"
        )
    table = pd.read_csv(path, sep="\t", dtype={"label": str})
    missing = {"entry", "sequence", "label"} - set(table.columns)
    if missing:
        raise LabelledSetError(f"{path}: missing column(s) {sorted(missing)}")
    sequences = table["sequence"].astype(str).str.upper().tolist()
    labels: list = []
    for row, (seq, raw) in enumerate(zip(sequences, table["label"])):
        try:
            values = [int(v) for v in str(raw).strip().strip(",").split(",")]
        except ValueError as err:
            raise LabelledSetError(
                f"{path} row {row + 2}: label {raw!r} is not an integer list"
            ) from err
        if per_residue and len(values) != len(seq):
            raise LabelledSetError(
                f"{path} row {row + 2}: {len(values)} labels for {len(seq)} residues"
            )
        if not per_residue and len(values) != 1:
            raise LabelledSetError(f"{path} row {row + 2}: one label per protein expected")
        labels.append(np.array(values) if per_residue else values[0])
    return LabelledSet(table["entry"].astype(str).tolist(), sequences, labels)


@dataclass
class ProbeOptions:
    """``layer``: hidden layer probed (-1: final); ``C``: inverse L2 strength;
    ``test_fraction``: share of proteins held out (by name); ``window``: half-width of the
    one-hot baseline (per residue); ``max_proteins``: a seeded sample of proteins (quick
    looks; null = all); ``max_train_rows``: a seeded sample of training residues (per
    residue; null = all); ``n_bootstrap``: resamples of test proteins for the CIs."""

    layer: int = -1
    C: float = 1.0
    test_fraction: float = 0.2
    window: int = 7
    max_proteins: int | None = None
    max_train_rows: int | None = 100_000
    n_bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise TaskError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.C <= 0:
            raise TaskError(f"C must be > 0, got {self.C}")
        for name in ("max_proteins", "max_train_rows"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise TaskError(f"{name} must be >= 2 or null, got {value}")


@dataclass(frozen=True)
class ProbeSet:
    task: str
    file: str
    per_residue: bool


SETS = {
    "location": ProbeSet("location", "SEQ_LOCATION.tsv", per_residue=False),
    "soluble": ProbeSet("soluble", "SEQ_SOLUBLE.tsv", per_residue=False),
    "disorder": ProbeSet("disorder", "AA_LDR.tsv", per_residue=True),
    "sa": ProbeSet("sa", "AA_SA.tsv", per_residue=True),
}


def sample(data: LabelledSet, n: int | None, seed: int) -> LabelledSet:
    """A seeded sample of ``n`` proteins (all when ``n`` is None or not smaller)."""
    if n is None or n >= len(data.names):
        return data
    keep = np.sort(np.random.default_rng(seed).choice(len(data.names), n, replace=False))
    return LabelledSet(
        *([values[i] for i in keep] for values in (data.names, data.sequences, data.labels))
    )


def protein_probes(
    data: LabelledSet, engines: list, opts: ProbeOptions, budget: int
) -> pd.DataFrame:
    """Per-protein probes: mean-pooled states of each engine, composition, majority."""
    test = held_out(data.names, opts.test_fraction)
    y = np.asarray(data.labels)

    def features():
        for name, engine in engines:
            x = np.stack(
                hidden_states(engine, data.sequences, opts.layer, pool=True, budget=budget)
            )
            yield name, x[~test], x[test]
        x = aa_composition(data.sequences)
        yield "aa_composition", x[~test], x[test]

    return probe_table(features(), y[~test], y[test], None, opts.C, opts.n_bootstrap, opts.seed)


def residue_probes(
    data: LabelledSet, engines: list, opts: ProbeOptions, budget: int
) -> pd.DataFrame:
    """Per-residue probes: hidden states of each engine, one-hot windows, majority; split
    by protein, training residues sampled to ``max_train_rows``, CIs over test proteins."""
    test_protein = held_out(data.names, opts.test_fraction)
    lengths = np.array([len(s) for s in data.sequences])
    protein = np.repeat(np.arange(len(lengths)), lengths)
    test = test_protein[protein]
    train_rows = np.flatnonzero(~test)
    if opts.max_train_rows is not None and len(train_rows) > opts.max_train_rows:
        rng = np.random.default_rng(opts.seed)
        train_rows = np.sort(rng.choice(train_rows, opts.max_train_rows, replace=False))
    test_rows = np.flatnonzero(test)
    y = np.concatenate(data.labels)

    def features():
        for name, engine in engines:
            x = np.concatenate(hidden_states(engine, data.sequences, opts.layer, budget=budget))
            yield name, x[train_rows], x[test_rows]
        x = np.concatenate([onehot_windows(s, opts.window) for s in data.sequences])
        yield "onehot_window", x[train_rows], x[test_rows]

    return probe_table(
        features(),
        y[train_rows],
        y[test_rows],
        protein[test_rows],
        opts.C,
        opts.n_bootstrap,
        opts.seed,
    )


def run_probe_set(probe_set: ProbeSet, inputs: TaskInputs, opts: ProbeOptions) -> pd.DataFrame:
    """Every model on one labelled set: ``model, predictor, metric, value, ci_low, ci_high``."""
    if inputs.data_dir is None:
        raise TaskError(
            f"{probe_set.task}: give data_dir= (what protein-performer-data fetch-benchmarks wrote)"
        )
    data = read_labelled(
        Path(inputs.data_dir) / AAANALYSIS_DIR / probe_set.file, probe_set.per_residue
    )
    data = sample(data, opts.max_proteins, opts.seed)
    run = residue_probes if probe_set.per_residue else protein_probes
    tables = []
    for spec in inputs.models:
        start = time.perf_counter()
        loaded = load_model(spec.path)
        engines = [
            (name, Engine(m, inputs.device)) for name, m in model_and_twin(loaded, opts.seed)
        ]
        table = run(data, engines, opts, inputs.budget)
        log.info(
            "%s on %s: %d proteins in %.1f s (model + random_init + baselines)",
            probe_set.task,
            spec.label,
            len(data.names),
            time.perf_counter() - start,
        )
        tables.append(table.assign(model=spec.label)[["model", *table.columns]])
    return pd.concat(tables, ignore_index=True)


def _task(name: str) -> Task:
    return Task(name, ProbeOptions, lambda inputs, opts: run_probe_set(SETS[name], inputs, opts))


LOCATION, SOLUBLE, DISORDER, SA = (_task(n) for n in ("location", "soluble", "disorder", "sa"))
