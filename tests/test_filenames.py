"""Run labels and input file names become safe file and directory names."""

from protein_performer.filenames import safe_name


def test_other_characters_become_underscores_and_the_length_is_capped():
    assert safe_name("attention=favor_relu,objective=mlm", "model") == (
        "attention=favor_relu_objective=mlm"
    )
    assert safe_name("2026-01-01/last#1", "model") == "2026-01-01_last_1"
    assert safe_name("a/b c", "model", limit=3) == "a_b"
    assert safe_name("valid.fasta.gz", "input") == "valid.fasta.gz"


def test_an_empty_label_takes_the_default():
    assert safe_name("", "model") == "model"
    assert safe_name("abc", "input", limit=0) == "input"
