"""DMS readers: mavenn's csv.gz (wild type derived from the rows) and ProteinGym's layout."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from protein_performer.benchmarks.dms_data import (
    AssayError,
    every_single_mutant,
    load_assays,
    read_mavenn,
)
from protein_performer.inference.mutations import MutationError

# Wild type MKTAYIAK (in no row as the majority of every column only).
FIVE_ROWS = """set,dist,y,x
training,1,0.5,MKTAYIAG
training,1,-1.0,AKTAYIAK
test,2,0.2,MRTAYLAK
training,1,0.9,MKTA*IAK
training,0,0.0,MKTAYIAK
"""


def _write_gz(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))
    return path


def test_five_rows_wild_type_mutants_and_drops(tmp_path: Path) -> None:
    assay = read_mavenn(_write_gz(tmp_path / "toy_data.csv.gz", FIVE_ROWS))
    assert assay.wild_type == "MKTAYIAK"
    assert assay.mutant_strings() == ["K8G", "M1A", "K2R:I6L"]
    np.testing.assert_array_equal(assay.measured, [0.5, -1.0, 0.2])
    np.testing.assert_array_equal(assay.n_mutations, [1, 1, 2])
    assert assay.notes == {"stop": 1, "no_measurement": 0, "wild_type": 1}
    seqs = [s.tobytes().decode() for s in assay.sequences()]
    assert seqs == ["MKTAYIAG", "AKTAYIAK", "MRTAYLAK"]


def test_known_set_numbering_and_orientation(tmp_path: Path) -> None:
    # gb1 rows lack Met1 (first residue is 2); nisthal's y is a destabilisation (negated).
    gb1 = read_mavenn(_write_gz(tmp_path / "mavenn" / "gb1_data.csv.gz", FIVE_ROWS))
    assert gb1.name == "GB1_Olson2014" and gb1.mutant_strings()[0] == "K9G"
    text = 'x,name,y\nMKTAYIAG,K09G,1.5\nAKTAYIAK,"C, M02A",-2.0\nMKTAYIAK,"WT, WT ",0\n'
    nisthal = read_mavenn(_write_gz(tmp_path / "nisthal_data.csv.gz", text))
    assert nisthal.mutant_strings() == ["K9G", "M2A"]
    np.testing.assert_array_equal(nisthal.measured, [-1.5, 2.0])


def test_mavenn_errors_name_the_line(tmp_path: Path) -> None:
    bad_dist = FIVE_ROWS.replace("test,2,0.2", "test,1,0.2")
    with pytest.raises(AssayError, match=r"toy_data.csv.gz line 4: dist=1 but .* at 2 positions"):
        read_mavenn(_write_gz(tmp_path / "toy_data.csv.gz", bad_dist))
    short = FIVE_ROWS.replace("MRTAYLAK", "MRTAYLA")
    with pytest.raises(AssayError, match="line 4: variant of length 7"):
        read_mavenn(_write_gz(tmp_path / "toy_data.csv.gz", short))
    odd = FIVE_ROWS.replace("MRTAYLAK", "MRTAYLAB")
    with pytest.raises(AssayError, match="line 4: residue 'B' at position 8"):
        read_mavenn(_write_gz(tmp_path / "toy_data.csv.gz", odd))
    with pytest.raises(AssayError, match="no column 'x'"):
        read_mavenn(_write_gz(tmp_path / "toy_data.csv.gz", "y,seq\n1,MK\n"))
    wrong_name = "x,name,y\nMKTAYIAG,K08A,1.5\nAKTAYIAK,M01A,-2.0\nMKTAYIAK,WT,0\n"
    with pytest.raises(AssayError, match="name 'K08A' but the sequence carries K8G"):
        read_mavenn(_write_gz(tmp_path / "x_data.csv.gz", wrong_name))


def _proteingym(root: Path) -> Path:
    wt1, wt2 = "MKTAYIAK", "ACDEFGHIKL"
    ref = pd.DataFrame(
        {
            "DMS_id": ["TOY1_HUMAN_Doe_2020", "TOY2_YEAST_Roe_2021"],
            "DMS_filename": ["TOY1_HUMAN_Doe_2020.csv", "TOY2_YEAST_Roe_2021.csv"],
            "target_seq": [wt1, wt2],
            "seq_len": [8, 10],
        }
    )
    (root / "reference_files").mkdir(parents=True)
    ref.to_csv(root / "reference_files" / "DMS_substitutions.csv", index=False)
    sub = root / "DMS_ProteinGym_substitutions"
    sub.mkdir()
    pd.DataFrame(
        {
            "mutant": ["K2R", "M1A:K8G", "Y5W"],
            "mutated_sequence": ["MRTAYIAK", "AKTAYIAG", "MKTAWIAK"],
            "DMS_score": [0.1, -2.0, 1.0],
            "DMS_score_bin": [1, 0, 1],
        }
    ).to_csv(sub / "TOY1_HUMAN_Doe_2020.csv", index=False)
    pd.DataFrame(
        {
            "mutant": ["A1C", "L10M"],
            "mutated_sequence": ["CCDEFGHIKL", "ACDEFGHIKM"],
            "DMS_score": [0.3, float("nan")],
        }
    ).to_csv(sub / "TOY2_YEAST_Roe_2021.csv", index=False)
    return root


def test_proteingym_layout(tmp_path: Path) -> None:
    root = _proteingym(tmp_path / "pg")
    assays = load_assays(root / "reference_files")  # reference dir: CSVs found beside its parent
    assert [a.name for a in assays] == ["TOY1_HUMAN_Doe_2020", "TOY2_YEAST_Roe_2021"]
    toy1, toy2 = assays
    assert toy1.mutant_strings() == ["K2R", "M1A:K8G", "Y5W"]
    np.testing.assert_array_equal(toy1.measured, [0.1, -2.0, 1.0])
    assert toy2.mutant_strings() == ["A1C"] and toy2.notes["no_measurement"] == 1
    (only,) = load_assays(root, ["TOY2_YEAST_Roe_2021"])
    assert only.wild_type == "ACDEFGHIKL"


def test_proteingym_errors(tmp_path: Path) -> None:
    root = _proteingym(tmp_path / "pg")
    with pytest.raises(AssayError, match="no assay 'NOPE'"):
        load_assays(root, ["NOPE"])
    csv = root / "DMS_ProteinGym_substitutions" / "TOY1_HUMAN_Doe_2020.csv"
    table = pd.read_csv(csv)
    table.loc[1, "mutated_sequence"] = "AKTAYIAA"
    table.to_csv(csv, index=False)
    with pytest.raises(AssayError, match="TOY1_HUMAN_Doe_2020.csv line 3: mutated_sequence"):
        load_assays(root, ["TOY1_HUMAN_Doe_2020"])
    table.loc[1, "mutant"] = "M1A:Q8G"
    table.to_csv(csv, index=False)
    with pytest.raises(MutationError, match="line 3: mutation 'Q8G': the wild type has 'K'"):
        load_assays(root, ["TOY1_HUMAN_Doe_2020"])
    csv.unlink()
    with pytest.raises(FileNotFoundError, match="TOY1_HUMAN_Doe_2020.csv .* is in none of"):
        load_assays(root)


def test_empty_or_missing_data_dir_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fetch-benchmarks --out"):
        load_assays(tmp_path)
    with pytest.raises(FileNotFoundError, match="data_dir not found"):
        load_assays(tmp_path / "nope")


def test_every_single_mutant() -> None:
    assay = every_single_mutant("wt", "MKA", first_position=5)
    assert len(assay) == 57 and np.isnan(assay.measured).all()
    strings = assay.mutant_strings()
    assert strings[0] == "M5A" and strings[-1] == "A7Y" and "M5M" not in strings
    with pytest.raises(AssayError, match="non-standard residues"):
        every_single_mutant("wt", "MKXA")
