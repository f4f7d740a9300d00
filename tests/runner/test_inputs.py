"""open_input: the one opener of a user's proteins; every failure an InputError naming the file."""

from __future__ import annotations

import pytest

from protein_performer.evaluation.unigram import EMBEDDED_VALID
from protein_performer.runner import InputError, open_input


def test_open_input_embedded_and_bad_files(tmp_path):
    src = open_input(EMBEDDED_VALID)
    assert len(src) == 500
    bad = tmp_path / "bad.fasta"
    bad.write_text(">p1\nMKJLV\n")
    with pytest.raises(InputError, match="bad.fasta.*'J'"):
        open_input(bad)
    empty = tmp_path / "empty.fasta"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        open_input(empty)
    with pytest.raises(InputError, match="input not found: .*missing.fasta"):
        open_input(tmp_path / "missing.fasta")
