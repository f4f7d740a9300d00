"""The alphabet: golden token indices and vectorised encoding rules."""

import numpy as np
import pytest

from protein_performer.data.alphabet import ALPHABET, InvalidResidueError


def test_golden_tokens():
    # Fixed indices: checkpoints depend on them.
    assert ALPHABET.tokens[:6] == ("<pad>", "<mask>", "<cls>", "<eos>", "<sep>", "<unk>")
    assert "".join(ALPHABET.tokens[6:26]) == "ACDEFGHIKLMNPQRSTVWY"
    assert "".join(ALPHABET.tokens[26:]) == "XBZUO"
    assert len(ALPHABET) == 31
    assert (ALPHABET.pad_idx, ALPHABET.mask_idx, ALPHABET.cls_idx) == (0, 1, 2)
    assert (ALPHABET.eos_idx, ALPHABET.sep_idx, ALPHABET.unk_idx) == (3, 4, 5)
    assert list(ALPHABET.standard_idx) == list(range(6, 26))
    assert list(ALPHABET.residue_idx) == list(range(6, 31))


def test_encode_matches_per_character_lookup():
    seq = "MKTAYIAKQRXBZUO"
    expected = [ALPHABET.index(c) for c in seq]
    assert ALPHABET.encode(seq).tolist() == expected
    assert ALPHABET.encode(seq.encode()).dtype == np.uint8
    assert ALPHABET.decode(ALPHABET.encode(seq)) == seq


def test_lower_case_and_terminal_stop():
    assert ALPHABET.encode("mkta*").tolist() == ALPHABET.encode("MKTA").tolist()


def test_gaps_are_errors_unless_removed():
    with pytest.raises(InvalidResidueError, match="gap character"):
        ALPHABET.encode("MK-TA")
    assert ALPHABET.encode("MK-T.A", remove_gaps=True).tolist() == ALPHABET.encode("MKTA").tolist()


def test_invalid_residue_position_and_unk():
    with pytest.raises(InvalidResidueError) as err:
        ALPHABET.encode("MKJ1")
    assert err.value.char == "J" and err.value.position == 2
    assert "position 3" in str(err.value)
    out = ALPHABET.encode("MKJ", unknown_to_unk=True)
    assert out.tolist()[-1] == ALPHABET.unk_idx


def test_wrap_crops_to_the_first_window_of_the_token_stream():
    """A cropped protein keeps <cls> + its first residues and no false <eos>: the window a
    validation example holds, so analysis sees what the model was trained and validated on."""
    from protein_performer.data.datasets import protein_example

    residues = ALPHABET.encode("ACDEFGHIKLMNPQRSTVWY")
    whole = ALPHABET.wrap(residues, 22)
    assert whole[0] == ALPHABET.cls_idx and whole[-1] == ALPHABET.eos_idx and len(whole) == 22
    for max_length in (5, 21):
        cropped = ALPHABET.wrap(residues, max_length)
        assert len(cropped) == max_length and cropped[0] == ALPHABET.cls_idx
        assert ALPHABET.eos_idx not in cropped
        np.testing.assert_array_equal(cropped[1:], residues[: max_length - 1])
    for max_length in (5, 21, 22, 40):
        example = protein_example(residues, 0, max_length, train=False, seed=0, epoch=0)
        np.testing.assert_array_equal(ALPHABET.wrap(residues, max_length), example["tokens"])
