"""Objective: the one place that decides causality and the targets of each objective."""

from __future__ import annotations

import pytest
import torch

from protein_performer.data.alphabet import ALPHABET
from protein_performer.masking import IGNORE, causal_targets, mask_tokens
from protein_performer.objective import Objective


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(6, 26, (4, 30), generator=g)
    tokens[:, 0], tokens[:, -1] = ALPHABET.cls_idx, ALPHABET.eos_idx
    tokens[3, 20:] = ALPHABET.pad_idx
    return tokens, tokens != ALPHABET.pad_idx


def test_causality_and_validation():
    assert Objective("clm").causal and not Objective("mlm").causal
    assert Objective().name == "mlm" and Objective().mask_prob == 0.15
    assert str(Objective("clm")) == "clm"
    with pytest.raises(
        ValueError, match=r"objective.name must be one of \['clm', 'mlm'\], got 'bert'"
    ):
        Objective("bert")
    with pytest.raises(ValueError, match=r"objective.mask_prob must be in \(0, 1\), got 0"):
        Objective("mlm", 0)
    # clm carries a mask_prob it never uses: any value is accepted
    assert Objective("clm", 0).mask_prob == 0.0


@pytest.mark.parametrize("objective", [Objective("clm"), Objective("mlm", 0.3)])
def test_hparams_round_trip(objective):
    hp = objective.to_hparams()
    assert set(hp) == {"objective", "mask_prob"} and isinstance(hp["objective"], str)
    assert Objective.from_hparams(hp) == objective
    # hyper-parameters written before mask_prob was stored: the default
    assert Objective.from_hparams({"objective": objective.name}).mask_prob == 0.15


def test_targets_are_the_objectives():
    tokens, mask = _batch()
    inputs, targets = Objective("clm").inputs_and_targets(tokens, mask)
    assert torch.equal(inputs, tokens) and torch.equal(targets, causal_targets(tokens, mask))
    for corrupt in (True, False):
        got = Objective("mlm", 0.3).inputs_and_targets(
            tokens, mask, torch.Generator().manual_seed(1), corrupt=corrupt
        )
        want = mask_tokens(
            tokens, mask, prob=0.3, generator=torch.Generator().manual_seed(1), corrupt=corrupt
        )
        assert all(torch.equal(a, b) for a, b in zip(got, want))
        scored = got[1] != IGNORE
        assert scored.any() and not (scored & ~mask).any()
        if not corrupt:
            assert (got[0][scored] == ALPHABET.mask_idx).all()
