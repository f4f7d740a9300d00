"""Protein chains read from PDB files (Bio.PDB) and their DSSP secondary structure.

A :class:`Chain` holds the sequence of the residues that have coordinates, one point per
residue (C-beta; C-alpha for glycine), and what was left out:

* ``n_missing``: residues of the chain in the file that cannot be used (no C-alpha, or a
  residue name that is not an amino acid); they are skipped, so the sequence and the
  coordinates stay aligned. Waters and ligands (hetero residues other than modified amino
  acids such as MSE) are not residues of the chain and are not counted.
* ``n_virtual_cb``: non-glycine residues without a C-beta atom; their C-beta is placed from
  N, C-alpha and C with the ideal geometry trRosetta and ESM use, or falls back to the
  C-alpha when a backbone atom is missing too.
* ``n_breaks``: chain breaks, consecutive C-alpha atoms farther apart than 4.2 A (residues
  absent from the deposited model; the numbering cannot be trusted to say how many).

Contacts are pairs whose points lie closer than 8 A (:func:`contact_map`). DSSP strings
(``<string> <name>`` in ``*.pdb.dssp``) are reduced to three states by :func:`three_state`.
"""

from __future__ import annotations

import gzip
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protein_performer.errors import InputError

CONTACT_THRESHOLD = 8.0  # Angstrom, between C-beta atoms (C-alpha for glycine)
BREAK_DISTANCE = 4.2  # Angstrom; consecutive C-alpha atoms are 3.8 A apart in a chain
SS_STATES = "HEC"  # helix, strand, coil

# DSSP's eight states -> three: helices (H, G, I), strands (E, B), everything else coil.
_DSSP_TO_3 = {"H": "H", "G": "H", "I": "H", "E": "E", "B": "E"}


class StructureError(InputError):
    """A structure or DSSP file cannot be read or does not fit its partner."""


@dataclass
class Chain:
    """One protein chain: sequence and C-beta points of the residues with coordinates."""

    name: str
    sequence: str
    coords: np.ndarray  # [L, 3] float64: C-beta (C-alpha for Gly, virtual C-beta if absent)
    residue_ids: list[int]  # PDB residue numbers of the L residues
    n_missing: int = 0
    n_virtual_cb: int = 0
    n_breaks: int = 0
    ss: str | None = None  # 3-state H/E/C string of length L, when DSSP was read

    def __len__(self) -> int:
        return len(self.sequence)

    def contacts(self, threshold: float = CONTACT_THRESHOLD) -> np.ndarray:
        """bool [L, L]: pairs closer than ``threshold`` A (see :func:`contact_map`)."""
        return contact_map(self.coords, threshold)


def contact_map(coords: np.ndarray, threshold: float = CONTACT_THRESHOLD) -> np.ndarray:
    """bool [L, L]: ``|x_i - x_j| < threshold`` for points ``coords`` [L, 3] (diagonal True)."""
    x = np.asarray(coords, dtype=np.float64)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    return d < threshold


def virtual_cb(n: np.ndarray, ca: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The ideal C-beta position from backbone N, C-alpha, C (trRosetta's constants)."""
    b = ca - n
    c_ = c - ca
    a = np.cross(b, c_)
    return -0.58273431 * a + 0.56802827 * b - 0.54067466 * c_ + ca


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def _one_letter(resname: str) -> str | None:
    from Bio.Data.PDBData import protein_letters_3to1_extended

    letter = protein_letters_3to1_extended.get(resname.upper())
    return letter if letter is not None and len(letter) == 1 else None


def read_pdb(path: str | Path, chain_id: str | None = None, name: str | None = None) -> Chain:
    """The chain ``chain_id`` (default: the first) of the first model of a PDB file (or .gz)."""
    from Bio.PDB import PDBParser
    from Bio.PDB.PDBExceptions import PDBConstructionWarning

    p = Path(path)
    if not p.is_file():
        raise StructureError(f"structure file not found: {p}")
    try:
        with _open_text(p) as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", PDBConstructionWarning)
            structure = PDBParser(QUIET=True).get_structure(p.name, handle)
    except (OSError, ValueError, IndexError) as err:
        raise StructureError(f"{p} is not a readable PDB file: {err}") from err
    models = list(structure)
    if not models or not list(models[0]):
        raise StructureError(f"{p} holds no chain (no ATOM records)")
    chains = {c.id: c for c in models[0]}
    if chain_id is None:
        chain = next(iter(chains.values()))
    elif chain_id in chains:
        chain = chains[chain_id]
    else:
        raise StructureError(f"{p} has no chain {chain_id!r} (chains: {sorted(chains)})")

    letters: list[str] = []
    points: list[np.ndarray] = []
    ca_points: list[np.ndarray] = []
    ids: list[int] = []
    missing = virtual = 0
    for residue in chain:
        hetflag = residue.id[0]
        letter = _one_letter(residue.get_resname())
        if hetflag == "W" or (hetflag.strip() and letter is None):
            continue  # water or ligand: not part of the chain
        if letter is None or "CA" not in residue:
            missing += 1
            continue
        ca = residue["CA"].coord.astype(np.float64)
        if letter == "G":
            point = ca
        elif "CB" in residue:
            point = residue["CB"].coord.astype(np.float64)
        else:
            virtual += 1
            if "N" in residue and "C" in residue:
                point = virtual_cb(
                    residue["N"].coord.astype(np.float64), ca, residue["C"].coord.astype(np.float64)
                )
            else:
                point = ca
        letters.append(letter)
        points.append(point)
        ca_points.append(ca)
        ids.append(int(residue.id[1]))
    if not letters:
        raise StructureError(f"{p}: chain {chain.id!r} has no amino-acid residue with coordinates")
    ca_arr = np.asarray(ca_points)
    gaps = np.linalg.norm(np.diff(ca_arr, axis=0), axis=1) if len(ca_arr) > 1 else np.zeros(0)
    return Chain(
        name=name or p.name.split(".")[0],
        sequence="".join(letters),
        coords=np.asarray(points),
        residue_ids=ids,
        n_missing=missing,
        n_virtual_cb=virtual,
        n_breaks=int((gaps > BREAK_DISTANCE).sum()),
    )


def three_state(dssp: str) -> str:
    """DSSP states -> H (H, G, I), E (E, B) or C (anything else: loops, turns, '-', ' ')."""
    return "".join(_DSSP_TO_3.get(s, "C") for s in dssp)


def read_dssp(path: str | Path) -> str:
    """The 3-state string of a ``*.pdb.dssp`` file (first field of its first line)."""
    p = Path(path)
    if not p.is_file():
        raise StructureError(f"DSSP file not found: {p}")
    fields = p.read_text().split()
    if not fields:
        raise StructureError(f"{p} is empty (expected '<DSSP string> <name>')")
    return three_state(fields[0])


def load_chains(directory: str | Path, names: list[str] | None = None) -> list[Chain]:
    """Every ``<name>.pdb[.gz]`` with a ``<name>.pdb.dssp`` beside it in ``directory``.

    The DSSP string must have one state per residue read (else :class:`StructureError`
    naming both files). ``names`` restricts the chains read (all must exist), in that order.
    """
    d = Path(directory)
    if not d.is_dir():
        raise StructureError(
            f"structure directory not found: {d} "
            "(run protein-performer-data fetch-benchmarks --out DATA_DIR, then data_dir=DATA_DIR)"
        )
    found = {f.name[: -len(".pdb.dssp")]: f for f in d.glob("*.pdb.dssp")}
    wanted = sorted(found) if names is None else list(names)
    absent = [n for n in wanted if n not in found]
    if absent:
        raise StructureError(f"{d} lacks the DSSP files of {absent[:5]} (fetch the data again)")
    chains = []
    for n in wanted:
        pdb = next(
            (d / f"{n}{ext}" for ext in (".pdb.gz", ".pdb") if (d / f"{n}{ext}").is_file()), None
        )
        if pdb is None:
            raise StructureError(f"{d} has {n}.pdb.dssp but no {n}.pdb.gz or {n}.pdb")
        chain = read_pdb(pdb, name=n)
        ss = read_dssp(found[n])
        if len(ss) != len(chain):
            raise StructureError(
                f"{found[n]} has {len(ss)} states but {pdb.name} has {len(chain)} residues with "
                "coordinates; the files do not belong together"
            )
        chain.ss = ss
        chains.append(chain)
    return chains
