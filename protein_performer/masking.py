"""Targets of the two objectives: BERT-style masking (mlm) and next-token targets (clm).

Used by training (the LightningModule) and evaluation alike, through
:meth:`protein_performer.objective.Objective.inputs_and_targets` or directly.

Targets use ``IGNORE = -100`` (PyTorch's cross-entropy ``ignore_index``) on unscored positions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from protein_performer.data.alphabet import ALPHABET

IGNORE = -100
DEFAULT_MASK_PROB = 0.15  # BERT's and the Performer paper's share of masked residues
FIRST_RESIDUE = int(ALPHABET.first_residue_idx)  # residues are FIRST_RESIDUE .. len(ALPHABET)-1
STANDARD = torch.as_tensor(ALPHABET.standard_idx, dtype=torch.long)  # the 20 amino acids
# clm targets never score these (pad is padding, <cls> opens a protein and <mask> never occurs)
NOT_PREDICTED = (ALPHABET.pad_idx, ALPHABET.cls_idx, ALPHABET.mask_idx)


def residue_positions(tokens: Tensor, mask: Tensor | None = None) -> Tensor:
    """Bool [B, L]: real residue tokens (standard or rare), never special tokens or padding."""
    sel = (tokens >= FIRST_RESIDUE) & (tokens < len(ALPHABET))
    return sel if mask is None else sel & mask


def _rand(shape: torch.Size, like: Tensor, generator: torch.Generator | None) -> Tensor:
    # Draw on the generator's device (a CPU generator can drive CUDA data), then move.
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device).to(like.device)


def mask_tokens(
    tokens: Tensor,
    mask: Tensor | None,
    *,
    prob: float = DEFAULT_MASK_PROB,
    generator: torch.Generator | None = None,
    corrupt: bool = True,
) -> tuple[Tensor, Tensor]:
    """BERT masking: (inputs, targets), both LongTensor [B, L].

    Each residue (token ids of residues only: special tokens and padding are never selected)
    is selected with probability ``prob``; a row with residues but no selection gets one
    residue selected at random, so every protein contributes. Selected positions become
    ``<mask>`` with probability 0.8, a uniformly random standard amino acid with 0.1, and stay
    unchanged with 0.1. ``targets`` holds the original token at selected positions, -100
    elsewhere. ``generator`` makes the draw reproducible (validation, evaluation).

    ``corrupt=False`` (validation and evaluation) turns every selected position into
    ``<mask>``: with the 80/10/10 rule, the 10% left unchanged show the model its answer and
    flatter the perplexity (copying them alone gives about 0.9x the log-perplexity).
    """
    if not 0.0 < prob < 1.0:
        raise ValueError(f"mask prob must be in (0, 1), got {prob}")
    tokens = tokens.long()
    eligible = residue_positions(tokens, mask)
    u = _rand(tokens.shape, tokens, generator)
    selected = eligible & (u < prob)
    # rows with residues but nothing selected: select their eligible position of lowest u
    empty = eligible.any(dim=1) & ~selected.any(dim=1)
    fallback = u.masked_fill(~eligible, 2.0).argmin(dim=1)  # [B]
    selected[empty, fallback[empty]] = True

    action = _rand(tokens.shape, tokens, generator)
    mask_share = 0.8 if corrupt else 1.0
    to_mask = selected & (action < mask_share)
    to_random = selected & (action >= mask_share) & (action < 0.9)
    standard = STANDARD.to(tokens.device)
    n_std = len(standard)
    pick = (_rand(tokens.shape, tokens, generator) * n_std).long().clamp_(max=n_std - 1)
    inputs = torch.where(to_mask, torch.full_like(tokens, ALPHABET.mask_idx), tokens)
    inputs = torch.where(to_random, standard[pick], inputs)
    targets = torch.where(selected, tokens, torch.full_like(tokens, IGNORE))
    return inputs, targets


def causal_targets(tokens: Tensor, mask: Tensor | None) -> Tensor:
    """Next-token targets [B, L]: ``targets[:, t] = tokens[:, t + 1]`` (predicted from <= t).

    Scored: every real next token except ``<cls>``/``<mask>``/padding, i.e. every residue,
    ``<unk>``, the closing ``<eos>`` of a protein and the ``<sep>`` between concatenated
    proteins. The last position and positions whose next token is padding get -100.
    """
    tokens = tokens.long()
    nxt = torch.full_like(tokens, IGNORE)
    nxt[:, :-1] = tokens[:, 1:]
    valid = torch.ones_like(tokens, dtype=torch.bool)
    valid[:, -1] = False
    if mask is not None:
        valid[:, :-1] &= mask[:, 1:] & mask[:, :-1]
    for idx in NOT_PREDICTED:
        valid &= nxt != idx
    return torch.where(valid, nxt, torch.full_like(nxt, IGNORE))
