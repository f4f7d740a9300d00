"""BERT masking statistics and causal next-token targets."""

from __future__ import annotations

import math

import pytest
import torch

from protein_performer.data.alphabet import ALPHABET
from protein_performer.masking import IGNORE, causal_targets, mask_tokens

STD = torch.as_tensor(ALPHABET.standard_idx)


def batch(n_rows=400, length=120, seed=0):
    """Proteins of random lengths with <cls>/<eos>, a few rare residues and padding."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.full((n_rows, length), ALPHABET.pad_idx, dtype=torch.long)
    lengths = torch.randint(3, length + 1, (n_rows,), generator=g)
    for i, n in enumerate(lengths.tolist()):
        res = STD[torch.randint(0, 20, (n - 2,), generator=g)]
        rare = torch.rand(n - 2, generator=g) < 0.02
        res[rare] = int(ALPHABET.residue_idx[-1])  # O
        tokens[i, 0], tokens[i, 1 : n - 1], tokens[i, n - 1] = (
            ALPHABET.cls_idx,
            res,
            ALPHABET.eos_idx,
        )
    mask = torch.arange(length)[None] < lengths[:, None]
    return tokens, mask


def test_masking_statistics():
    tokens, mask = batch()
    inputs, targets = mask_tokens(
        tokens, mask, prob=0.15, generator=torch.Generator().manual_seed(1)
    )
    residues = mask & (tokens >= ALPHABET.first_residue_idx)
    selected = targets != IGNORE
    n_res, n_sel = int(residues.sum()), int(selected.sum())
    # binomial tolerance (5 sigma), plus the "at least one per protein" top-up
    sigma = math.sqrt(n_res * 0.15 * 0.85)
    assert abs(n_sel - 0.15 * n_res) < 5 * sigma + tokens.shape[0] * 0.15
    # never special tokens or padding; targets are the original tokens
    assert not (selected & ~residues).any()
    assert torch.equal(targets[selected], tokens[selected])
    # unselected positions are untouched
    assert torch.equal(inputs[~selected], tokens[~selected])
    # 80 / 10 / 10
    masked = (inputs == ALPHABET.mask_idx) & selected
    same = (inputs == tokens) & selected
    random = selected & ~masked & ~same
    for count, p in ((masked, 0.8), (random, 0.1 * 19 / 20)):
        s = math.sqrt(n_sel * p * (1 - p))
        assert abs(int(count.sum()) - p * n_sel) < 5 * s, (int(count.sum()), p * n_sel)
    # random replacements are standard amino acids
    assert torch.isin(inputs[random], STD).all()
    # every protein with residues has at least one selected residue
    assert (selected.sum(1) >= 1).all()


def test_masking_reproducible_and_ignores_specials_without_a_mask():
    tokens, mask = batch(20, 30)
    a = mask_tokens(tokens, mask, generator=torch.Generator().manual_seed(3))
    b = mask_tokens(tokens, mask, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    # no mask given (all positions real): special tokens and pad ids are still never selected
    _, t = mask_tokens(tokens, None, generator=torch.Generator().manual_seed(3))
    assert not ((t != IGNORE) & (tokens < ALPHABET.first_residue_idx)).any()
    only_specials = torch.tensor([[ALPHABET.cls_idx, ALPHABET.eos_idx, 0]])
    _, t = mask_tokens(only_specials, None)
    assert (t == IGNORE).all()
    with pytest.raises(ValueError, match="mask prob"):
        mask_tokens(tokens, mask, prob=0.0)


def test_causal_targets():
    c, e, p, s = ALPHABET.cls_idx, ALPHABET.eos_idx, ALPHABET.pad_idx, ALPHABET.sep_idx
    tokens = torch.tensor(
        [
            [c, 6, 7, 8, e, p, p],  # a padded protein
            [c, 9, 10, 11, 12, 13, e],
            [6, 7, s, 8, 9, s, 10],  # a concatenated window: <sep> is scored, like <eos>
        ]
    )
    mask = tokens != p
    want = torch.tensor(
        [
            [6, 7, 8, e, IGNORE, IGNORE, IGNORE],
            [9, 10, 11, 12, 13, e, IGNORE],
            [7, s, 8, 9, s, 10, IGNORE],
        ]
    )
    assert torch.equal(causal_targets(tokens, mask), want)
    # <cls> is never a target (a new protein inside a window is not predictable)
    t2 = torch.tensor([[6, e, c, 7]])
    assert causal_targets(t2, None).tolist() == [[e, IGNORE, 7, IGNORE]]


def test_evaluation_masking_hides_every_scored_residue():
    torch.manual_seed(0)
    tokens = torch.randint(6, 26, (64, 200))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    gen = torch.Generator().manual_seed(3)
    inputs, targets = mask_tokens(tokens, mask, prob=0.15, generator=gen, corrupt=False)
    scored = targets != IGNORE
    assert scored.float().mean().item() == pytest.approx(0.15, abs=0.01)
    assert (inputs[scored] == ALPHABET.mask_idx).all()
    assert torch.equal(inputs[~scored], tokens[~scored])
