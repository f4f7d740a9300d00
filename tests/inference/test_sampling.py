"""Sampling: seeds, top-k, top-p, temperature and prompt validation, sampleable tokens."""

from __future__ import annotations

import pytest
import torch
from common import tiny_lm

from protein_performer.data.alphabet import ALPHABET
from protein_performer.inference.generate import SamplingOptions, filter_probs, generate
from protein_performer.model.lm import PerformerLM


def _lm(causal: bool = True) -> PerformerLM:
    return tiny_lm(
        "favor_softmax", attention={"nb_features": 8}, n_layers=1, max_length=40, causal=causal
    )


def test_seed_reproducible_and_seeds_differ() -> None:
    model = _lm()
    a = generate(model, 4, SamplingOptions(seed=3, max_new_tokens=20))
    b = generate(model, 4, SamplingOptions(seed=3, max_new_tokens=20))
    c = generate(model, 4, SamplingOptions(seed=4, max_new_tokens=20))
    assert [x.residues for x in a] == [x.residues for x in b]
    assert [x.residues for x in a] != [x.residues for x in c]


def test_only_standard_residues_and_eos() -> None:
    model = _lm()
    for item in generate(model, 8, SamplingOptions(seed=0, max_new_tokens=30), prompt="mk"):
        assert item.residues.startswith("MK")
        assert set(item.residues) <= set("ACDEFGHIKLMNPQRSTVWY")
        assert len(item.residues) <= model.cfg.max_length - 1


def test_top_k_one_is_greedy() -> None:
    model = _lm()
    out = generate(model, 2, SamplingOptions(top_k=1, max_new_tokens=10, seed=5))
    tokens = [ALPHABET.cls_idx]
    allowed = torch.tensor(list(range(6, 26)) + [ALPHABET.eos_idx])
    for _ in range(10):
        logits = model(torch.tensor([tokens]))[0, -1]
        best = int(allowed[logits[allowed].argmax()])
        if best == ALPHABET.eos_idx:
            break
        tokens.append(best)
    greedy = ALPHABET.decode(tokens[1:])
    assert out[0].residues == out[1].residues == greedy


def test_top_p_keeps_smallest_set_with_mass_p() -> None:
    # hand-made distribution over four amino acids: 0.5, 0.3, 0.15, 0.05
    logits = torch.full((1, len(ALPHABET)), float("-inf"))
    idx = [6, 7, 8, 9]
    logits[0, idx] = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    p = filter_probs(logits, SamplingOptions(top_p=0.8))[0]
    assert torch.allclose(p[idx], torch.tensor([0.625, 0.375, 0, 0], dtype=p.dtype))
    p = filter_probs(logits, SamplingOptions(top_p=0.81))[0]
    assert (p[idx] > 0).tolist() == [True, True, True, False]
    p = filter_probs(logits, SamplingOptions(top_p=0.4))[0]
    assert (p[idx] > 0).tolist() == [True, False, False, False]


def test_temperature_sharpens() -> None:
    logits = torch.zeros(1, len(ALPHABET))
    logits[0, 6], logits[0, 7] = 1.0, 0.0
    p = filter_probs(logits, SamplingOptions(temperature=0.5))[0]
    assert p[6] / p[7] == pytest.approx(torch.e**2)
    others = [i for i in range(len(ALPHABET)) if i not in range(6, 26) and i != ALPHABET.eos_idx]
    assert p[others].sum() == 0 and p[ALPHABET.eos_idx] > 0  # specials (but eos), rare: never


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
    ],
)
def test_option_validation(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        SamplingOptions(**kwargs)


def test_prompt_validation_and_length() -> None:
    model = _lm()
    with pytest.raises(ValueError, match="prompt: invalid residue '1' at position 3"):
        generate(model, 1, SamplingOptions(), prompt="MK1")
    with pytest.raises(ValueError, match="max_length"):
        generate(model, 1, SamplingOptions(), prompt="A" * 39)
    out = generate(model, 1, SamplingOptions(max_new_tokens=500, top_k=1), prompt="A" * 30)
    assert len(out[0].residues) <= 39


def test_bidirectional_model_refused() -> None:
    with pytest.raises(ValueError, match="objective=clm"):
        generate(_lm(causal=False), 1, SamplingOptions())
