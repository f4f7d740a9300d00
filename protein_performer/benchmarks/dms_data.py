"""Deep mutational scans as :class:`Assay` objects: mavenn's csv.gz sets and ProteinGym's layout.

Two layouts of ``data_dir`` are read by :func:`load_assays`:

- what ``protein-performer-data fetch-benchmarks`` writes: ``mavenn/<set>_data.csv.gz`` with
  a variant sequence ``x``, a measurement ``y`` and (mostly) a Hamming distance ``dist``.
  The files hold no wild type: it is derived as the consensus residue of each position over
  the rows (every position is the wild type in most variants of these scans). Variants
  with a stop ``*`` are dropped, as ProteinGym drops them; so is the wild type's own row.
- ProteinGym's (Notin et al. 2023): ``DMS_substitutions.csv`` (``DMS_id``, ``DMS_filename``,
  ``target_seq``) beside, or in ``reference_files/`` above, one CSV per assay with
  ``mutant`` (``A24G:K30R``, 1-based on ``target_seq``), ``mutated_sequence``, ``DMS_score``
  (higher = fitter).

Every measurement is oriented so that higher = fitter (ProteinGym's convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from protein_performer.data.alphabet import STANDARD_AMINO_ACIDS
from protein_performer.errors import MissingInputError
from protein_performer.inference.mutations import MutationError, parse_mutant

PROTEINGYM_REFERENCE = "DMS_substitutions.csv"


class AssayError(MutationError):
    """A DMS file is malformed or inconsistent (names the file, the row and the fix)."""


@dataclass(frozen=True)
class MavennSet:
    """A mavenn dataset: assay name, number of the wild type's first residue, orientation."""

    assay: str
    first_position: int
    sign: float  # +1: higher y = fitter; -1: y is a destabilisation (flip it)
    reference: str


# first_position: the residue numbering the papers use for the constructs in the files.
MAVENN_SETS: dict[str, MavennSet] = {
    # GB1 IgG-binding fitness, residues 2-56 (rows lack Met1), all double mutants.
    "gb1": MavennSet("GB1_Olson2014", 2, 1.0, "Olson et al. 2014, Curr Biol"),
    # Abeta42 nucleation scores (residues 1-42), singles and doubles.
    "amyloid": MavennSet("Abeta42_Seuma2022", 1, 1.0, "Seuma et al. 2022, Nat Commun"),
    # TDP-43 toxicity scores of its prion-like region, residues 290-373.
    "tdp43": MavennSet("TDP43_Bolognesi2019", 290, 1.0, "Bolognesi et al. 2019, Nat Commun"),
    # GB1 stability: y is ddG of unfolding relative to the wild type with positive =
    # destabilising (core residues Y3, A26, Y45, F52 score highest), so it is negated.
    "nisthal": MavennSet("GB1_Nisthal2019", 2, -1.0, "Nisthal et al. 2019, PNAS"),
}


@dataclass
class Assay:
    """Variants of one wild type with their measurements.

    ``sites``: int64 [N, K] 0-based positions into ``wild_type`` (-1 pads variants with fewer
    than K mutations); ``alts``: the mutant residues as str [N, K] ("" on padding);
    ``measured``: float64 [N] (NaN: not measured, e.g. a heatmap of every single mutant).
    ``first_position`` numbers ``wild_type[0]`` in the mutant strings.
    """

    name: str
    wild_type: str
    sites: np.ndarray
    alts: np.ndarray
    measured: np.ndarray
    first_position: int = 1
    source: str = ""
    notes: dict[str, int] = field(default_factory=dict)  # rows dropped, by reason

    def __post_init__(self) -> None:
        n = len(self.measured)
        if self.sites.shape != self.alts.shape or self.sites.shape[0] != n:
            raise ValueError(
                f"assay {self.name}: sites {self.sites.shape}, alts {self.alts.shape} and "
                f"{n} measurements disagree"
            )

    def __len__(self) -> int:
        return len(self.measured)

    @property
    def n_mutations(self) -> np.ndarray:
        """int64 [N]: how many positions each variant changes."""
        return (self.sites >= 0).sum(axis=1)

    def mutant_strings(self) -> list[str]:
        """``"A24G:K30R"`` per variant, numbered from ``first_position``."""
        wt, off = self.wild_type, self.first_position
        return [
            ":".join(f"{wt[s]}{s + off}{a}" for s, a in zip(row_s, row_a) if s >= 0)
            for row_s, row_a in zip(self.sites.tolist(), self.alts.tolist())
        ]

    def sequences(self, rows: np.ndarray | None = None) -> np.ndarray:
        """uint8 [n, L] ASCII of the variant sequences (all rows, or ``rows``)."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        seqs = np.tile(np.frombuffer(self.wild_type.encode(), np.uint8), (len(rows), 1))
        sites, alts = self.sites[rows], self.alts[rows]
        r, k = np.nonzero(sites >= 0)
        seqs[r, sites[r, k]] = np.frombuffer("".join(alts[r, k]).encode(), np.uint8)
        return seqs

    def subset(self, rows: np.ndarray, name: str | None = None) -> Assay:
        """The variants ``rows`` (indices or a boolean mask) as an assay of their own."""
        return Assay(
            name or self.name,
            self.wild_type,
            self.sites[rows],
            self.alts[rows],
            self.measured[rows],
            self.first_position,
            self.source,
        )


def every_single_mutant(name: str, wild_type: str, first_position: int = 1) -> Assay:
    """All 19 x L single substitutions of ``wild_type``, unmeasured (for a heatmap)."""
    wild_type = wild_type.strip().upper()
    bad = sorted(set(wild_type) - set(STANDARD_AMINO_ACIDS))
    if bad:
        raise AssayError(f"wild type {name}: non-standard residues {bad} (use the 20 standard)")
    sites, alts = [], []
    for i, w in enumerate(wild_type):
        for a in STANDARD_AMINO_ACIDS:
            if a != w:
                sites.append(i)
                alts.append(a)
    return Assay(
        name,
        wild_type,
        np.array(sites, dtype=np.int64)[:, None],
        np.array(alts, dtype=object)[:, None],
        np.full(len(sites), np.nan),
        first_position,
        "every single mutant",
    )


def _from_sequences(seqs: np.ndarray, wild_type: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sites / alts [N, K] of uint8 [N, L] variant sequences against the wild type [L]."""
    diff = seqs != wild_type[None, :]
    k = int(diff.sum(axis=1).max(initial=0))
    sites = np.full((len(seqs), max(k, 1)), -1, dtype=np.int64)
    alts = np.full(sites.shape, "", dtype=object)
    r, c = np.nonzero(diff)  # row-major: each row's sites in increasing order
    slot = np.arange(len(r)) - np.searchsorted(r, r)  # rank of each site within its row
    sites[r, slot] = c
    alts[r, slot] = list(seqs[r, c].tobytes().decode("ascii"))
    return sites, alts


def consensus(seqs: np.ndarray) -> np.ndarray:
    """uint8 [L]: the most frequent byte of each column of uint8 [N, L] (ties: lowest)."""
    counts = np.zeros((256, seqs.shape[1]), dtype=np.int64)
    for j in range(seqs.shape[1]):
        counts[:, j] = np.bincount(seqs[:, j], minlength=256)
    return counts.argmax(axis=0).astype(np.uint8)


def _read_table(path: Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    """A CSV with ``columns``, or an :class:`AssayError` naming the file and the missing one."""
    table = pd.read_csv(path)
    for col in columns:
        if col not in table.columns:
            raise AssayError(f"{path}: no column {col!r} (columns: {list(table.columns)}); {what}")
    return table


def read_mavenn(path: str | Path, key: str | None = None) -> Assay:
    """One mavenn ``<key>_data.csv.gz`` file as an :class:`Assay` (see the module doc)."""
    path = Path(path)
    key = key or path.name.removesuffix(".gz").removesuffix(".csv").removesuffix("_data")
    meta = MAVENN_SETS.get(key, MavennSet(key, 1, 1.0, ""))
    table = _read_table(
        path, ("x", "y"), "a mavenn DMS file has the variant in x, its measurement in y"
    )
    x = table["x"].astype(str).str.strip().str.upper()
    notes: dict[str, int] = {}
    stop = x.str.contains("*", regex=False).to_numpy()
    notes["stop"] = int(stop.sum())
    keep = ~stop & table["y"].notna().to_numpy()
    notes["no_measurement"] = int((~stop & ~keep).sum())
    lengths = x.str.len().to_numpy()
    if not keep.any():
        raise AssayError(f"{path}: no variant without a stop and with a measurement")
    length = int(np.bincount(lengths[keep]).argmax())
    odd = np.nonzero(keep & (lengths != length))[0]
    if len(odd):
        raise AssayError(
            f"{path} line {odd[0] + 2}: variant of length {lengths[odd[0]]}, the others have "
            f"{length} (substitutions only: every x must have the wild type's length)"
        )
    rows = np.nonzero(keep)[0]
    seqs = np.frombuffer("".join(x.iloc[rows]).encode("ascii"), np.uint8).reshape(-1, length)
    bad = ~np.isin(seqs, np.frombuffer(STANDARD_AMINO_ACIDS.encode(), np.uint8))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise AssayError(
            f"{path} line {rows[i] + 2}: residue {chr(seqs[i, j])!r} at position {j + 1} is "
            "not one of the 20 standard amino acids"
        )
    wt = consensus(seqs)
    sites, alts = _from_sequences(seqs, wt)
    n_mut = (sites >= 0).sum(axis=1)
    if "dist" in table.columns:
        dist = table["dist"].to_numpy()[rows]
        wrong = np.nonzero(dist != n_mut)[0]
        if len(wrong):
            raise AssayError(
                f"{path} line {rows[wrong[0]] + 2}: dist={dist[wrong[0]]} but the variant "
                f"differs from the consensus wild type at {n_mut[wrong[0]]} positions"
            )
    wild_type = wt.tobytes().decode("ascii")
    assay = Assay(
        meta.assay,
        wild_type,
        sites,
        alts,
        meta.sign * table["y"].to_numpy(dtype=np.float64)[rows],
        meta.first_position,
        f"mavenn {path.name} ({meta.reference})" if meta.reference else f"mavenn {path.name}",
    )
    if "name" in table.columns:
        _check_names(path, table["name"].astype(str).to_numpy()[rows], assay, rows)
    variant = n_mut > 0
    notes["wild_type"] = int((~variant).sum())
    out = assay.subset(np.nonzero(variant)[0])
    out.notes = notes
    return out


def _check_names(path: Path, names: np.ndarray, assay: Assay, rows: np.ndarray) -> None:
    """A ``name`` column (``T02A``; Nisthal's ``C, L07I``) must name the derived mutation."""
    derived = assay.mutant_strings()
    for i, (given, mine) in enumerate(zip(names, derived)):
        last = given.split(",")[-1].strip()
        try:
            parsed = parse_mutant(
                last, assay.wild_type, offset=assay.first_position, row=f"{path} line {rows[i] + 2}"
            )
        except MutationError:
            if mine == "" and "WT" in given.upper():
                continue
            raise
        text = ":".join(f"{m.wt}{m.index + assay.first_position}{m.mt}" for m in parsed)
        if mine and text != mine:
            raise AssayError(
                f"{path} line {rows[i] + 2}: name {given!r} but the sequence carries {mine}"
            )


def read_proteingym_assay(path: str | Path, name: str, target_seq: str) -> Assay:
    """One ProteinGym substitution CSV (``mutant``, ``mutated_sequence``, ``DMS_score``)."""
    path = Path(path)
    table = _read_table(
        path,
        ("mutant", "DMS_score"),
        "a ProteinGym assay CSV has mutant, mutated_sequence, DMS_score",
    )
    target_seq = target_seq.strip().upper()
    keep = table["DMS_score"].notna().to_numpy()
    mutants = table["mutant"].astype(str).to_numpy()
    stop = np.array(["*" in m for m in mutants])
    rows = np.nonzero(keep & ~stop)[0]
    parsed = [parse_mutant(mutants[i], target_seq, row=f"{path} line {i + 2}") for i in rows]
    k = max((len(p) for p in parsed), default=1)
    sites = np.full((len(rows), k), -1, dtype=np.int64)
    alts = np.full(sites.shape, "", dtype=object)
    for r, muts in enumerate(parsed):
        for j, m in enumerate(muts):
            sites[r, j], alts[r, j] = m.index, m.mt
    assay = Assay(
        name,
        target_seq,
        sites,
        alts,
        table["DMS_score"].to_numpy(dtype=np.float64)[rows],
        1,
        f"ProteinGym {path.name}",
        {"stop": int(stop.sum()), "no_measurement": int((~keep & ~stop).sum())},
    )
    if "mutated_sequence" in table.columns:
        given = table["mutated_sequence"].astype(str).str.upper().to_numpy()[rows]
        built = assay.sequences()
        for r in range(len(rows)):
            if given[r] != built[r].tobytes().decode("ascii"):
                raise AssayError(
                    f"{path} line {rows[r] + 2}: mutated_sequence does not equal target_seq "
                    f"with {mutants[rows[r]]} applied (check DMS_substitutions.csv's target_seq)"
                )
    return assay


def _proteingym_reference(data_dir: Path) -> Path | None:
    for candidate in (
        data_dir / PROTEINGYM_REFERENCE,
        data_dir / "reference_files" / PROTEINGYM_REFERENCE,
    ):
        if candidate.is_file():
            return candidate
    return None


def read_proteingym(data_dir: str | Path, assays: list[str] | None = None) -> list[Assay]:
    """Every assay (or ``assays``, by DMS_id) listed in ProteinGym's reference file."""
    data_dir = Path(data_dir)
    ref_path = _proteingym_reference(data_dir)
    if ref_path is None:
        raise MissingInputError(
            f"{data_dir}: no {PROTEINGYM_REFERENCE} (ProteinGym's reference file)"
        )
    ref = _read_table(
        ref_path, ("DMS_id", "DMS_filename", "target_seq"), "ProteinGym's reference file"
    )
    if assays:
        unknown = sorted(set(assays) - set(ref["DMS_id"]))
        if unknown:
            raise AssayError(f"{ref_path}: no assay {unknown[0]!r} (DMS_id column)")
        ref = ref[ref["DMS_id"].isin(assays)]
    # The download's layout: reference_files/ beside DMS_ProteinGym_substitutions/.
    bases = dict.fromkeys([data_dir, ref_path.parent, ref_path.parent.parent])
    folders = [f for b in bases for f in (b, b / "DMS_ProteinGym_substitutions")]
    out = []
    for row in ref.itertuples(index=False):
        found = next(
            (f / row.DMS_filename for f in folders if (f / row.DMS_filename).is_file()), None
        )
        if found is None:
            raise MissingInputError(
                f"{row.DMS_filename} (assay {row.DMS_id} in {ref_path}) is in none of "
                f"{[str(f) for f in folders]}; fix: put the assay CSVs there or choose assays="
            )
        out.append(read_proteingym_assay(found, str(row.DMS_id), str(row.target_seq)))
    return out


def load_assays(data_dir: str | Path, assays: list[str] | None = None) -> list[Assay]:
    """The assays of ``data_dir`` in either layout (see the module doc); ``assays`` picks by name
    (ProteinGym DMS_id or a mavenn assay name such as ``GB1_Olson2014``)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise MissingInputError(
            f"data_dir not found: {data_dir} (fill it with protein-performer-data "
            "fetch-benchmarks --out DIR, or point it at a ProteinGym download)"
        )
    if _proteingym_reference(data_dir) is not None:
        return read_proteingym(data_dir, assays)
    files = sorted((data_dir / "mavenn").glob("*_data.csv.gz"))
    files = [f for f in files if f.name.removesuffix("_data.csv.gz") in MAVENN_SETS]
    if not files:
        raise MissingInputError(
            f"{data_dir}: neither {PROTEINGYM_REFERENCE} (ProteinGym) nor mavenn/*_data.csv.gz; "
            f"fix: protein-performer-data fetch-benchmarks --out {data_dir}"
        )
    names = {MAVENN_SETS[f.name.removesuffix("_data.csv.gz")].assay: f for f in files}
    if assays:
        unknown = sorted(set(assays) - set(names))
        if unknown:
            raise AssayError(f"{data_dir}: no assay {unknown[0]!r} (found: {sorted(names)})")
        names = {a: names[a] for a in assays}
    return [read_mavenn(f) for f in names.values()]
