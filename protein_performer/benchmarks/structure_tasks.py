"""The structure tasks on the MDAnalysisTests chains (``<data_dir>/dssp``): ``contacts``
(attention -> contacts, Rao et al.) and ``ss`` (3-state secondary structure probe).

Both fit on the same fixed 20 training chains (:data:`TRAIN_CHAINS`, also written in
conf/benchmark.yaml) and report on the other chains only. Each model-based predictor runs
twice, on the trained model and on its ``random_init`` twin (same config, untrained), with
the same regression on the same split. Per-model files go to ``<task dir>/<model label>/``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from protein_performer.analysis.control import random_init_like
from protein_performer.benchmarks import contacts as C
from protein_performer.benchmarks.contact_figures import plot_contact_maps, plot_head_precision
from protein_performer.benchmarks.probes import onehot_windows, probe_table
from protein_performer.benchmarks.representations import attention_maps, hidden_states
from protein_performer.benchmarks.structures import SS_STATES, Chain, load_chains
from protein_performer.benchmarks.task_types import Task, TaskError, TaskInputs
from protein_performer.runner import Engine, LoadedLM, load_model

log = logging.getLogger(__name__)

# 20 of the 50 chains, fixed once (the 20 smallest crc32 of the names; chosen before any
# model was run): the contact regression and the SS probe are fitted on these only.
TRAIN_CHAINS: tuple[str, ...] = (
    "1dx5I", "1eteA", "1lpbA", "2fvvA", "2gu3A", "2j49A", "2qdlA", "2xcjA", "3ejfA", "3gknA",
    "3gwiA", "3hklA", "3ieyB", "3lqcA", "3nbkA", "3ny7A", "3on9A", "3q4oA", "3t5gB", "4dkcA",
)  # fmt: skip
STRUCTURE_DIR = "dssp"  # below data_dir, as protein-performer-data fetch-benchmarks writes it


@dataclass
class StructureOptions:
    """What both structure tasks share: the split, the bootstrap, the seed."""

    train_chains: list[str] = field(default_factory=lambda: list(TRAIN_CHAINS))
    n_bootstrap: int = 1000
    seed: int = 0  # the bootstrap and the random_init twin
    C: float = 1.0  # inverse regularisation strength of the regression

    def __post_init__(self) -> None:
        self.train_chains = list(self.train_chains)
        if len(self.train_chains) < 2:
            raise TaskError("train_chains: give at least 2 chain names (default: 20)")
        if self.C <= 0:
            raise TaskError(f"C must be > 0, got {self.C}")
        if self.n_bootstrap < 0:
            raise TaskError(f"n_bootstrap must be >= 0, got {self.n_bootstrap}")


@dataclass
class ContactsOptions(StructureOptions):
    C: float = C.DEFAULT_C  # inverse L1 strength (Rao et al.)
    figure_chains: int = 3  # held-out chains drawn in contact_maps.png


@dataclass
class SSOptions(StructureOptions):
    layer: int = -1  # hidden layer probed (-1: the final representation)
    window: int = 7  # half-width of the one-hot baseline's window


def split_chains(data_dir: Path, train_names: list[str]) -> tuple[list[Chain], list[Chain]]:
    """(training chains, held-out chains) of ``<data_dir>/dssp``."""
    chains = load_chains(Path(data_dir) / STRUCTURE_DIR)
    absent = sorted(set(train_names) - {c.name for c in chains})
    if absent:
        raise TaskError(
            f"train_chains {absent} are not in {Path(data_dir) / STRUCTURE_DIR} "
            "(run protein-performer-data fetch-benchmarks, or fix the list)"
        )
    wanted = set(train_names)
    return [c for c in chains if c.name in wanted], [c for c in chains if c.name not in wanted]


def model_and_twin(loaded: LoadedLM, seed: int) -> list[tuple[str, nn.Module]]:
    """``[("model", trained), ("random_init", same config untrained)]``."""
    return [("model", loaded.model), ("random_init", random_init_like(loaded.model, seed))]


def contact_chains(engine: Engine, chains: list[Chain]) -> list[C.ContactChain]:
    """Each chain's APC-corrected attention maps (every layer x head) and true contacts."""
    maps = attention_maps(engine, [c.sequence for c in chains], [c.name for c in chains])
    return [
        C.ContactChain(c.name, C.attention_features(m), c.contacts()) for c, m in zip(chains, maps)
    ]


def contacts_for_model(
    loaded: LoadedLM,
    train: list[Chain],
    test: list[Chain],
    out: Path,
    opts: ContactsOptions,
    device: str = "cpu",
) -> pd.DataFrame:
    """One model's contact summary (``predictor, range, k, precision, ci_low, ci_high,
    n_chains``); writes ``per_chain.csv``, ``heads.csv`` and the two figures to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    n_layers, n_heads = loaded.model_cfg.n_layers, loaded.model_cfg.n_heads
    tables = [C.density_table([(c.name, c.contacts()) for c in test])]
    for name, model in model_and_twin(loaded, opts.seed):
        engine = Engine(model, device)
        tr, te = contact_chains(engine, train), contact_chains(engine, test)
        reg = C.ContactRegression(opts.C, seed=opts.seed).fit(tr)
        predicted = [reg.predict(c) for c in te]
        tables.append(C.per_chain_table(name, te, predicted))
        if name != "model":
            continue
        # the single head chosen on the training chains, reported on the held-out ones
        on_train = C.head_precisions(tr)
        best = int(np.nanargmax(on_train))
        tables.append(C.per_chain_table("best_single_head", te, [c.features[best] for c in te]))
        heads = _heads_table(on_train, C.head_precisions(te), reg.weights, n_heads, best)
        heads.to_csv(out / "heads.csv", index=False)
        shown = sorted(zip(te, predicted), key=lambda m: m[0].name)[: opts.figure_chains]
        plot_contact_maps([(c.name, p, c.contacts) for c, p in shown], out / "contact_maps.png")
    per_chain = pd.concat(tables, ignore_index=True)
    per_chain.to_csv(out / "per_chain.csv", index=False)
    summary = C.summarise(per_chain, opts.n_bootstrap, opts.seed)
    null = summary.query("predictor == 'contact_density' and range == 'long' and k == 'L/5'")
    plot_head_precision(
        heads["heldout_precision"].to_numpy().reshape(n_layers, n_heads),
        float(null["precision"].iloc[0]),
        out / "head_precision.png",
        "long-range P@L/5 per head, held-out chains",
    )
    return summary


def _heads_table(train, heldout, weights, n_heads: int, best: int) -> pd.DataFrame:
    idx = np.arange(len(train))
    return pd.DataFrame(
        {
            "layer": idx // n_heads,
            "head": idx % n_heads,
            "train_precision": train,
            "heldout_precision": heldout,
            "regression_weight": weights,
            "best_single_head": idx == best,
        }
    )


def residue_labels(chains: list[Chain]) -> np.ndarray:
    """int [sum L]: each residue's 3-state index in :data:`SS_STATES` (H 0, E 1, C 2)."""
    return np.concatenate([np.array([SS_STATES.index(s) for s in c.ss]) for c in chains])


def ss_for_model(
    loaded: LoadedLM,
    train: list[Chain],
    test: list[Chain],
    opts: SSOptions,
    device: str = "cpu",
    budget: int = 16384,
) -> pd.DataFrame:
    """One model's 3-state SS summary (``predictor, metric, value, ci_low, ci_high``): its
    and its twin's hidden states of ``opts.layer``, the one-hot window baseline and the
    majority class, each fitted on the training chains; CIs resample held-out chains."""
    y_train, y_test = residue_labels(train), residue_labels(test)
    groups = np.concatenate([np.full(len(c), k) for k, c in enumerate(test)])

    def features():
        for name, model in model_and_twin(loaded, opts.seed):
            engine = Engine(model, device)
            x_train, x_test = (
                np.concatenate(
                    hidden_states(engine, [c.sequence for c in cs], opts.layer, budget=budget)
                )
                for cs in (train, test)
            )
            yield name, x_train, x_test
        yield (
            "onehot_window",
            *(
                np.concatenate([onehot_windows(c.sequence, opts.window) for c in cs])
                for cs in (train, test)
            ),
        )

    return probe_table(features(), y_train, y_test, groups, opts.C, opts.n_bootstrap, opts.seed)


def _each_model(inputs: TaskInputs, task: str, one) -> pd.DataFrame:
    """Run ``one(loaded, label, out)`` for every model; the summaries, ``model`` first."""
    if inputs.data_dir is None:
        raise TaskError(
            f"{task}: give data_dir= (what protein-performer-data fetch-benchmarks wrote)"
        )
    tables = []
    for spec in inputs.models:
        start = time.perf_counter()
        table = one(load_model(spec.path), inputs.out_dir / spec.label)
        log.info(
            "%s on %s: %.1f s (model + random_init)", task, spec.label, time.perf_counter() - start
        )
        tables.append(table.assign(model=spec.label)[["model", *table.columns]])
    return pd.concat(tables, ignore_index=True)


def run_contacts(inputs: TaskInputs, opts: ContactsOptions) -> pd.DataFrame:
    """Contacts from every layer x head attention map (see :mod:`.contacts`)."""

    def one(loaded, out):
        train, test = split_chains(inputs.data_dir, opts.train_chains)
        return contacts_for_model(loaded, train, test, out, opts, inputs.device)

    return _each_model(inputs, "contacts", one)


def run_ss(inputs: TaskInputs, opts: SSOptions) -> pd.DataFrame:
    """3-state secondary structure probe on the same split as contacts."""

    def one(loaded, out):
        train, test = split_chains(inputs.data_dir, opts.train_chains)
        return ss_for_model(loaded, train, test, opts, inputs.device, inputs.budget)

    return _each_model(inputs, "ss", one)


CONTACTS = Task("contacts", ContactsOptions, run_contacts)
SS = Task("ss", SSOptions, run_ss)
