"""The PDB and DSSP readers on tiny hand-written files with known answers."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from protein_performer.benchmarks.structures import (
    StructureError,
    contact_map,
    load_chains,
    read_dssp,
    read_pdb,
    three_state,
    virtual_cb,
)


def atom(serial, name, resname, resseq, xyz, record="ATOM", element="C"):
    x, y, z = xyz
    return (
        f"{record:<6}{serial:>5} {name:<4} {resname:>3} A{resseq:>4}    "
        f"{x:>8.3f}{y:>8.3f}{z:>8.3f}  1.00  0.00          {element:>2}"
    )


# ALA 1 (with CB), GLY 2 (no CB: its CA is used), SER 3 (N only: skipped, counted),
# LEU 5 (no CB: virtual C-beta from N, CA, C), 20 A away (a chain break), then a water.
LINES = [
    atom(1, "N", "ALA", 1, (-1.0, 1.0, 0.0), element="N"),
    atom(2, "CA", "ALA", 1, (0.0, 0.0, 0.0)),
    atom(3, "C", "ALA", 1, (1.5, 0.0, 0.0)),
    atom(4, "CB", "ALA", 1, (0.0, -1.5, 0.0)),
    atom(5, "N", "GLY", 2, (2.5, 0.5, 0.0), element="N"),
    atom(6, "CA", "GLY", 2, (3.8, 0.0, 0.0)),
    atom(7, "C", "GLY", 2, (5.0, 0.5, 0.0)),
    atom(8, "N", "SER", 3, (6.0, 0.0, 0.0), element="N"),
    atom(9, "N", "LEU", 5, (22.0, 1.0, 0.0), element="N"),
    atom(10, "CA", "LEU", 5, (23.8, 0.0, 0.0)),
    atom(11, "C", "LEU", 5, (25.0, 1.0, 0.0)),
    atom(12, "O", "HOH", 100, (9.0, 9.0, 9.0), record="HETATM", element="O"),
    "END",
]


@pytest.fixture
def pdb_file(tmp_path):
    path = tmp_path / "toyA.pdb.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(LINES) + "\n")
    return path


def test_pdb_reader_gly_uses_ca_and_missing_residues_are_skipped_and_counted(pdb_file):
    chain = read_pdb(pdb_file)
    assert chain.name == "toyA"
    assert chain.sequence == "AGL"
    assert chain.residue_ids == [1, 2, 5]
    assert chain.n_missing == 1  # SER 3 has no C-alpha; the water is not a residue
    assert chain.n_virtual_cb == 1  # LEU 5
    assert chain.n_breaks == 1  # GLY 2 -> LEU 5 is 20 A
    np.testing.assert_allclose(chain.coords[0], [0.0, -1.5, 0.0], atol=1e-3)  # ALA: CB
    np.testing.assert_allclose(chain.coords[1], [3.8, 0.0, 0.0], atol=1e-3)  # GLY: CA
    expected_cb = virtual_cb(
        np.array([22.0, 1.0, 0]), np.array([23.8, 0, 0]), np.array([25.0, 1, 0])
    )
    np.testing.assert_allclose(chain.coords[2], expected_cb, atol=1e-3)
    # ALA CB - GLY CA: sqrt(3.8^2 + 1.5^2) = 4.09 A < 8: contact; LEU is ~24 A away
    np.testing.assert_array_equal(
        chain.contacts(), [[True, True, False], [True, True, False], [False, False, True]]
    )


def test_virtual_cb_matches_a_real_residue():
    # THR 126 of PDB 1AHS chain A: N, CA, C, CB (the median residue of the MDAnalysisTests
    # chains is 0.07 A from its virtual C-beta)
    n, ca, c, cb = (
        np.array([45.850, 10.934, 17.530]),
        np.array([47.257, 10.677, 17.777]),
        np.array([48.115, 11.912, 17.477]),
        np.array([47.760, 9.458, 16.951]),
    )
    assert np.linalg.norm(virtual_cb(n, ca, c) - cb) < 0.1


def test_contact_map_threshold_is_strict():
    coords = np.array([[0.0, 0, 0], [8.0, 0, 0], [0, 7.99, 0]])
    np.testing.assert_array_equal(
        contact_map(coords), [[True, False, True], [False, True, False], [True, False, True]]
    )


def test_pdb_reader_errors_name_the_file(tmp_path):
    with pytest.raises(StructureError, match="not found"):
        read_pdb(tmp_path / "absent.pdb")
    empty = tmp_path / "empty.pdb"
    empty.write_text("END\n")
    with pytest.raises(StructureError, match="empty.pdb"):
        read_pdb(empty)


def test_three_state_reduction():
    assert three_state("HGIEBTS- PC") == "HHHEECCCCCC"


def test_dssp_files_pair_with_structures(tmp_path, pdb_file):
    (tmp_path / "toyA.pdb.dssp").write_text("H-E toyA.pdb\n")
    assert read_dssp(tmp_path / "toyA.pdb.dssp") == "HCE"
    (chain,) = load_chains(tmp_path)
    assert chain.ss == "HCE" and chain.sequence == "AGL"
    (tmp_path / "toyA.pdb.dssp").write_text("HH-E toyA.pdb\n")
    with pytest.raises(StructureError, match="4 states but toyA.pdb.gz has 3 residues"):
        load_chains(tmp_path)
    with pytest.raises(StructureError, match="lacks the DSSP files"):
        load_chains(tmp_path, ["other"])
