"""The mutation parser: valid strings, offsets, and each error naming row, mutation and residue."""

import pytest

from protein_performer.inference.mutations import (
    Mutation,
    MutationError,
    apply_mutant,
    parse_mutant,
    read_mutation_table,
)

WT = "MKTAYIAK"


def test_single_and_multi_mutants():
    assert parse_mutant("K2R", WT) == [Mutation("K", 1, "R")]
    muts = parse_mutant("M1A:a4g", WT)
    assert muts == [Mutation("M", 0, "A"), Mutation("A", 3, "G")]
    assert apply_mutant(WT, muts) == "AKTGYIAK"


def test_offset_numbering():
    assert parse_mutant("K101R", WT, offset=100) == [Mutation("K", 1, "R")]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("K2", "cannot parse mutation 'K2'"),
        ("K2R:", "empty mutation"),
        ("K9R", "position 9 is outside the wild type"),
        ("K0R", "position 0 is outside"),
        ("A2R", "has 'K' at position 2, not 'A'"),
        ("K2J", "unknown mutant residue 'J'"),
        ("K2R:K2A", "changes position 2 twice"),
    ],
)
def test_errors_name_the_row_and_the_problem(text, fragment):
    with pytest.raises(MutationError, match="^row 7: ") as err:
        parse_mutant(text, WT, row="row 7")
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("", "the file is empty; write a header line 'mutant,measured'"),
        ("mutant,measured\n", "a header and no mutants; add rows"),
        ("variant,measured\nA1G,0.1\n", "no column 'mutant'.*set mutant_column="),
        ("mutant,score2\nA1G,0.1\n", None),
    ],
    ids=["empty", "header-only", "no-mutant-column", "no-measured"],
)
def test_mutation_table_errors_name_the_file_and_the_fix(tmp_path, content, fragment):
    """A 0-byte CSV used to print pandas' "No columns to parse from file"; a header-only one
    exited 0 with "Spearman rho: nan"."""
    path = tmp_path / "dms.csv"
    path.write_text(content)
    if fragment is None:  # no measured column: scores only
        table, measured = read_mutation_table(path, "mutant", None)
        assert measured is None and list(table["mutant"]) == ["A1G"]
        with pytest.raises(MutationError, match="no measured column 'm'.*measured=null"):
            read_mutation_table(path, "mutant", "m")
        return
    with pytest.raises(MutationError, match=fragment) as exc:
        read_mutation_table(path, "mutant", None)
    assert str(exc.value).startswith(f"mutations={path}: ") and "\n" not in str(exc.value)
