"""Sample proteins from a causal checkpoint: temperature, top-k, top-p, prompt, seed -> FASTA.

Each sequence starts as ``<cls>`` + prompt and is extended one token at a time through
:class:`RecurrentDecoder` (O(1) memory per token for FAVOR+ and AFT-simple). Only the 20
standard amino acids and ``<eos>`` can be sampled (no other special or rare token is ever
emitted); a sequence ends at ``<eos>``, after ``max_new_tokens``, or at the model's max_length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from protein_performer.data.alphabet import ALPHABET, InvalidResidueError
from protein_performer.errors import InputError
from protein_performer.inference.decoder import RecurrentDecoder
from protein_performer.model.lm import PerformerLM


@dataclass(frozen=True)
class SamplingOptions:
    temperature: float = 1.0  # > 0; divides the logits
    top_k: int = 0  # keep the k most likely tokens; 0 = all
    top_p: float = 1.0  # nucleus: the smallest set with probability >= top_p; 1 = all
    max_new_tokens: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if not (
            isinstance(self.temperature, (int, float))
            and math.isfinite(self.temperature)
            and self.temperature > 0
        ):
            raise ValueError(
                f"temperature must be a finite number > 0, got {self.temperature!r} "
                "(for greedy decoding use top_k=1)"
            )
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0 = off), got {self.top_k!r}")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {self.top_p!r}")
        if isinstance(self.max_new_tokens, bool) or int(self.max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens!r}")


def sampleable_tokens() -> np.ndarray:
    """Token indices generation may emit: the 20 standard amino acids and ``<eos>``."""
    return np.concatenate([ALPHABET.standard_idx, [ALPHABET.eos_idx]])


def filter_probs(logits: Tensor, opt: SamplingOptions) -> Tensor:
    """logits [B, V] -> sampling probabilities [B, V]: non-sampleable tokens removed,
    temperature, then top-k, then top-p (the smallest most-likely set with mass >= top_p)."""
    allowed = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    allowed[torch.as_tensor(sampleable_tokens(), device=logits.device)] = True
    x = (logits.double() / opt.temperature).masked_fill(~allowed, float("-inf"))
    if opt.top_k:
        kth = x.topk(min(opt.top_k, int(allowed.sum())), dim=-1).values[..., -1:]
        x = x.masked_fill(x < kth, float("-inf"))
    probs = x.softmax(dim=-1)
    if opt.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p  # mass of the more likely tokens
        keep_sorted = before < opt.top_p  # the first token always stays
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = probs * keep
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def encode_prompt(prompt: str) -> np.ndarray:
    """Residue tokens of the prompt; a clear error names a bad character."""
    if not prompt:
        return np.zeros(0, dtype=np.int64)
    try:
        return ALPHABET.encode(prompt).astype(np.int64)
    except InvalidResidueError as err:
        raise InputError(
            f"prompt: {err}; a prompt is a run of one-letter amino-acid codes (e.g. prompt=MKT)"
        ) from None


@dataclass
class Generated:
    residues: str  # prompt + generated residues
    n_new: int  # tokens sampled (eos excluded)
    stop: str  # "eos" | "max_new_tokens" | "max_length"


@torch.no_grad()
def generate(
    model: PerformerLM,
    n: int,
    opt: SamplingOptions,
    prompt: str = "",
    batch_size: int = 32,
    progress=None,
) -> list[Generated]:
    """Sample ``n`` sequences (batches of ``batch_size`` decoded in lockstep).

    Reproducible for a given (seed, batch_size, device). ``progress(k)`` is called with each
    finished batch's size."""
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if not model.cfg.causal:
        raise InputError(
            "generation needs a causal model (trained with objective=clm); "
            "this checkpoint is a bidirectional masked LM"
        )
    model.eval()
    device = model.token_embedding.weight.device
    prefix = np.concatenate([[ALPHABET.cls_idx], encode_prompt(prompt)])
    room = model.cfg.max_length - len(prefix)  # tokens that still fit in max_length
    if room < 1:
        raise InputError(
            f"prompt of {len(prefix) - 1} residues leaves no room: the model's "
            f"max_length is {model.cfg.max_length} (including <cls>)"
        )
    budget = min(opt.max_new_tokens, room)
    gen = torch.Generator(device=device).manual_seed(opt.seed)
    out: list[Generated] = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        dec = RecurrentDecoder(model, b)
        for tok in prefix:
            logits = dec.step(torch.full((b,), int(tok), device=device, dtype=torch.long))
        new = torch.zeros(b, budget, dtype=torch.long, device=device)
        done = torch.zeros(b, dtype=torch.bool, device=device)
        lengths = torch.full((b,), budget, dtype=torch.long, device=device)
        for t in range(budget):
            nxt = torch.multinomial(filter_probs(logits, opt), 1, generator=gen)[:, 0]
            ended = (nxt == ALPHABET.eos_idx) & ~done
            lengths[ended] = t
            done |= ended
            new[:, t] = nxt
            if bool(done.all()) or t == budget - 1:
                break
            logits = dec.step(nxt)
        for row in range(b):
            k = int(lengths[row])
            stop = (
                "eos"
                if bool(done[row])
                else ("max_new_tokens" if budget == opt.max_new_tokens else "max_length")
            )
            residues = prompt.upper() + ALPHABET.decode(new[row, :k].tolist())
            out.append(Generated(residues=residues, n_new=k, stop=stop))
        if progress is not None:
            progress(b)
    return out


def fasta_header(index: int, item: Generated, opt: SamplingOptions, prompt: str) -> str:
    return (
        f"gen_{index} length={len(item.residues)} stop={item.stop} T={opt.temperature:g} "
        f"top_k={opt.top_k} top_p={opt.top_p:g} seed={opt.seed} prompt={prompt or '-'}"
    )
