"""The structure tasks on the MDAnalysisTests chains (``<data_dir>/dssp``): ``contacts``
(attention -> contacts, Rao et al.) and ``ss`` (3-state secondary structure probe).

Both fit on the same fixed 20 training chains (:data:`TRAIN_CHAINS`) and report on the
other chains only. Each predictor that needs a model runs twice: the trained model and its
``random_init`` twin (same config, untrained), with the same regression on the same split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from protein_performer.benchmarks import contacts as C
from protein_performer.benchmarks.contact_figures import plot_contact_maps, plot_head_precision
from protein_performer.benchmarks.probes import onehot_windows, probe
from protein_performer.benchmarks.representations import (
    attention_maps,
    hidden_states,
    random_init_twin,
)
from protein_performer.benchmarks.structures import SS_STATES, Chain, load_chains
from protein_performer.errors import InputError
from protein_performer.runner import Engine, LoadedLM

# 20 of the 50 chains, fixed once (the 20 smallest crc32 of the names; chosen before any
# model was run): the contact regression and the SS probe are fitted on these only.
TRAIN_CHAINS: tuple[str, ...] = (
    "1dx5I", "1eteA", "1lpbA", "2fvvA", "2gu3A", "2j49A", "2qdlA", "2xcjA", "3ejfA", "3gknA",
    "3gwiA", "3hklA", "3ieyB", "3lqcA", "3nbkA", "3ny7A", "3on9A", "3q4oA", "3t5gB", "4dkcA",
)  # fmt: skip
STRUCTURE_DIR = "dssp"  # below data_dir, as protein-performer-data fetch-benchmarks writes it


@dataclass
class StructureTask:
    """What both structure tasks share: the split, the bootstrap, the device."""

    train_chains: list[str] = field(default_factory=lambda: list(TRAIN_CHAINS))
    n_bootstrap: int = 1000
    seed: int = 0
    device: str = "cpu"


@dataclass
class ContactsTask(StructureTask):
    C: float = C.DEFAULT_C  # inverse L1 strength of the contact regression
    figure_chains: int = 3  # held-out chains drawn in contact_maps.png


@dataclass
class SSTask(StructureTask):
    layer: int = -1  # hidden layer probed (-1: the final representation)
    window: int = 7  # half-width of the one-hot baseline's window
    C: float = 1.0


def split_chains(data_dir: Path, train_names: list[str]) -> tuple[list[Chain], list[Chain]]:
    """(training chains, held-out chains) of ``<data_dir>/dssp``."""
    chains = load_chains(Path(data_dir) / STRUCTURE_DIR)
    names = {c.name for c in chains}
    absent = sorted(set(train_names) - names)
    if absent:
        raise InputError(
            f"train_chains {absent} are not in {Path(data_dir) / STRUCTURE_DIR} "
            "(run protein-performer-data fetch-benchmarks, or fix the list)"
        )
    train = [c for c in chains if c.name in set(train_names)]
    test = [c for c in chains if c.name not in set(train_names)]
    return train, test


def _models(loaded: LoadedLM, seed: int):
    yield "model", loaded.model
    yield "random_init", random_init_twin(loaded, seed)


def _contact_chains(engine: Engine, chains: list[Chain]) -> list[C.ContactChain]:
    maps = attention_maps(engine, [c.sequence for c in chains], [c.name for c in chains])
    return [
        C.ContactChain(c.name, C.attention_features(m), c.contacts()) for c, m in zip(chains, maps)
    ]


def run_contacts(
    loaded: LoadedLM, data_dir: str | Path, out_dir: str | Path, task: ContactsTask | None = None
) -> pd.DataFrame:
    """Contacts from attention: writes ``summary.csv`` (``predictor, range, k, precision,
    ci_low, ci_high, n_chains``), ``per_chain.csv``, ``heads.csv``, ``contact_maps.png`` and
    ``head_precision.png`` to ``out_dir``; returns the summary."""
    task = task or ContactsTask()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, test = split_chains(Path(data_dir), task.train_chains)
    tables, maps_for_figure = [C.density_table([(c.name, c.contacts()) for c in test])], []
    n_layers, n_heads = loaded.model_cfg.n_layers, loaded.model_cfg.n_heads
    for name, model in _models(loaded, task.seed):
        engine = Engine(model, task.device)
        tr, te = _contact_chains(engine, train), _contact_chains(engine, test)
        reg = C.ContactRegression(task.C, seed=task.seed).fit(tr)
        predicted = [reg.predict(c) for c in te]
        tables.append(C.per_chain_table(name, te, predicted))
        if name == "model":
            # the single head chosen on the training chains, reported on the held-out ones
            on_train = C.head_precisions(tr)
            best = int(np.nanargmax(on_train))
            tables.append(C.per_chain_table("best_single_head", te, [c.features[best] for c in te]))
            heads = _heads_table(on_train, C.head_precisions(te), reg.weights, n_heads, best)
            heads.to_csv(out / "heads.csv", index=False)
            maps_for_figure = [(c.name, p, c.contacts) for c, p in zip(te, predicted)]
        del tr, te
    per_chain = pd.concat(tables, ignore_index=True)
    per_chain.to_csv(out / "per_chain.csv", index=False)
    summary = C.summarise(per_chain, task.n_bootstrap, task.seed)
    summary.to_csv(out / "summary.csv", index=False)
    shown = sorted(maps_for_figure, key=lambda m: m[0])[: task.figure_chains]
    plot_contact_maps(shown, out / "contact_maps.png")
    grid = heads["heldout_precision"].to_numpy().reshape(n_layers, n_heads)
    density = summary.query("predictor == 'contact_density' and range == 'long' and k == 'L/5'")
    plot_head_precision(
        grid,
        float(density["precision"].iloc[0]),
        out / "head_precision.png",
        "long-range P@L/5 of each head (APC), held-out chains",
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


def run_ss(
    loaded: LoadedLM, data_dir: str | Path, out_dir: str | Path, task: SSTask | None = None
) -> pd.DataFrame:
    """3-state secondary structure, per residue: the model's and its twin's hidden states of
    ``task.layer`` and the one-hot window baseline, each a logistic regression fitted on the
    training chains; writes ``summary.csv`` (``predictor, metric, value, ci_low, ci_high``)
    with CIs over held-out chains, and returns it."""
    task = task or SSTask()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, test = split_chains(Path(data_dir), task.train_chains)
    y_train, y_test = residue_labels(train), residue_labels(test)
    groups = np.concatenate([np.full(len(c), k) for k, c in enumerate(test)])

    def fit(name: str, x_train: np.ndarray, x_test: np.ndarray) -> pd.DataFrame:
        return probe(
            name, x_train, y_train, x_test, y_test, groups, task.C, task.n_bootstrap, task.seed
        )

    tables = []
    for name, model in _models(loaded, task.seed):
        engine = Engine(model, task.device)
        x_train, x_test = (
            np.concatenate(hidden_states(engine, [c.sequence for c in cs], task.layer))
            for cs in (train, test)
        )
        tables.append(fit(name, x_train, x_test))
    windows = [
        np.concatenate([onehot_windows(c.sequence, task.window) for c in cs])
        for cs in (train, test)
    ]
    tables.append(fit("onehot_window", *windows))
    majority = np.bincount(y_train, minlength=3).argmax()
    tables.append(fit_constant("majority_class", majority, y_test, groups, task))
    summary = pd.concat(tables, ignore_index=True)
    summary.to_csv(out / "summary.csv", index=False)
    return summary


def fit_constant(name: str, label: int, y_test, groups, task) -> pd.DataFrame:
    """The null: every residue gets the training set's most frequent class."""
    from protein_performer.benchmarks.probes import metric_rows

    proba = np.zeros((len(y_test), len(SS_STATES)))
    proba[:, label] = 1.0
    return metric_rows(
        name, y_test, proba, np.arange(len(SS_STATES)), groups, task.n_bootstrap, task.seed
    )
