"""Causal log-likelihoods of many rows that differ from one base row at a few positions (the
variants of a wild type), sharing the work of their common prefixes.

A causal model's states at position t depend only on tokens < t, so a row equal to the base
up to position t has the base's states there. Each row is split at its *branch* position b
(its last position that differs from the base): its tokens before b are those of its
*parent* (the row with token b set back to the base's; the base itself for a single
substitution), so

- the parents (a few distinct rows: 1 for single mutants, one per single for double mutants)
  are walked token by token (:meth:`~protein_performer.model.lm.PerformerLM.run_step`), which
  gives their per-target log-probabilities and, before every position t, their decoding
  states;
- each row then runs only its suffix [b, L) in one pass from its parent's states at b
  (:meth:`~protein_performer.model.lm.PerformerLM.run_suffix`), batched with the rows that
  branch at the same position.

The log-probabilities are those of the full causal forward (float tolerance); the cost is
about the rows' suffix tokens instead of all their tokens.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from protein_performer.attention.base import Attention
from protein_performer.progress import Progress
from protein_performer.runner.engine import Engine


def walks_from_prefix(model: nn.Module) -> bool:
    """Whether ``model`` can run a suffix from prefix states: a causal
    :class:`~protein_performer.model.lm.PerformerLM` whose every attention kind has decoding
    states (exact, FAVOR+, AFT)."""
    blocks = getattr(model, "blocks", None)
    return (
        hasattr(model, "run_suffix")
        and bool(getattr(getattr(model, "cfg", None), "causal", False))
        and blocks is not None
        and all(type(b.attn)._init_state is not Attention._init_state for b in blocks)
    )


def sharing_pays(base: np.ndarray, rows: np.ndarray, min_rows_per_parent: int = 8) -> bool:
    """Whether the rows share their parents enough for :func:`shared_prefix_log_probs` to beat
    one full row each: the parents are walked token by token (many small steps), which pays
    only when at least ``min_rows_per_parent`` rows per parent branch off them (all 530,737
    GB1 doubles: ~500 per parent; a sample of 500 of them: ~1)."""
    _, parents = _branches(np.asarray(base), np.asarray(rows).reshape(-1, len(base)))
    return len(rows) >= min_rows_per_parent * len(np.unique(parents, axis=0))


def _log_probs(logits: Tensor) -> Tensor:
    """Log-softmax in float32 at least (float64 kept)."""
    return torch.log_softmax(logits, -1, dtype=torch.promote_types(logits.dtype, torch.float32))


def _branches(base: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's branch position (its last differing position; ``L`` for a row equal to the
    base) and its parent row (the base's token at the branch)."""
    length = len(base)
    diff = rows != base[None, :]
    branch = np.where(diff.any(1), length - 1 - np.argmax(diff[:, ::-1], axis=1), length)
    parents = rows.copy()
    r = np.nonzero(branch < length)[0]
    parents[r, branch[r]] = base[branch[r]]
    return branch, parents


def shared_prefix_log_probs(
    engine: Engine,
    base: np.ndarray,
    rows: np.ndarray,
    from_token: np.ndarray,
    *,
    budget: int = 65536,
    max_parents: int = 1024,
    max_rows: int = 2048,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """float64 [R]: each row's sum of log p(token t | tokens < t) over targets
    t >= ``from_token`` [R] (at most the row's last token that differs from the base), and
    float64 [L]: the base's log-probability of each target (0 at t = 0). ``base`` [L] and ``rows``
    [R, L] hold token ids of one length; the engine's model must pass :func:`walks_from_prefix`.
    Suffix batches hold at most ``max_rows`` rows
    and ``budget`` tokens; parents are walked ``max_parents`` at a time. ``progress`` advances
    by one per row."""
    model = engine.model
    base = np.asarray(base)
    rows = np.asarray(rows).reshape(-1, len(base))
    length = len(base)
    branch, parents = _branches(base, rows)
    if (np.asarray(from_token) > branch).any():
        raise ValueError("from_token must be <= each row's last token that differs from base")
    uniq, inverse = np.unique(np.vstack([base[None], parents]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    base_id, parent_of = int(inverse[0]), inverse[1:]
    sums = np.zeros(len(rows))
    base_lp = np.zeros(length)
    order = np.argsort(parent_of, kind="stable")
    bounds = np.searchsorted(parent_of[order], np.arange(0, len(uniq) + max_parents, max_parents))
    with torch.inference_mode():
        for c, lo in enumerate(range(0, len(uniq), max_parents)):
            hi = min(lo + max_parents, len(uniq))
            chunk = order[bounds[c] : bounds[c + 1]]  # the rows whose parent is in lo..hi-1
            lp = _walk(
                model,
                engine.device,
                uniq[lo:hi],
                rows[chunk],
                branch[chunk],
                parent_of[chunk] - lo,
                sums,
                chunk,
                walk_to=length - 1 if lo <= base_id < hi else int(branch[chunk].max(initial=0)),
                budget=budget,
                max_rows=max_rows,
                progress=progress,
            )
            if lo <= base_id < hi:
                base_lp = lp[base_id - lo]
            # targets [from_token, branch) are the parent's
            before = np.concatenate([np.zeros((hi - lo, 1)), np.cumsum(lp, axis=1)], axis=1)
            p = parent_of[chunk] - lo
            start = np.minimum(from_token[chunk], branch[chunk])
            sums[chunk] += before[p, np.minimum(branch[chunk], length)] - before[p, start]
    return sums, base_lp


def _walk(
    model: nn.Module,
    device: torch.device,
    parents: np.ndarray,
    rows: np.ndarray,
    branch: np.ndarray,
    parent: np.ndarray,
    sums: np.ndarray,
    row_ids: np.ndarray,
    *,
    walk_to: int,
    budget: int,
    max_rows: int,
    progress: Progress | None,
) -> np.ndarray:
    """Walk ``parents`` [P, L] token by token up to position ``walk_to``; before position t, run the
    suffix [t, L) of every row that branches at t from its parent's states and add
    log p(token t) + the suffix's log-probabilities into ``sums[row_ids]``. Returns the
    parents' per-target log-probabilities float64 [P, L] (0 past ``walk_to``)."""
    n_parents, length = parents.shape
    tokens = torch.from_numpy(parents.astype(np.int64)).to(device)
    states = model.decoding_states(n_parents)
    lp = np.zeros((n_parents, length))
    prev = None  # log p(. | parent tokens < t) [P, V]
    by_branch = np.argsort(branch, kind="stable")
    cuts = np.searchsorted(branch[by_branch], np.arange(length + 1))
    for t in range(length):
        at = by_branch[cuts[t] : cuts[t + 1]]  # rows branching at t
        width = length - 1 - t  # suffix inputs t .. L-2 predict targets t+1 .. L-1
        step = min(max_rows, max(1, budget // max(width, 1)))
        for s in range(0, len(at), step):
            idx = at[s : s + step]
            row_tok = torch.from_numpy(rows[idx].astype(np.int64)).to(device)
            pid = torch.from_numpy(parent[idx]).to(device)
            total = torch.zeros(len(idx), dtype=torch.float64, device=device)
            if prev is not None:
                total += prev[pid, row_tok[:, t]].double()
            if width:
                picked = [state.select(pid) for state in states]
                out = _log_probs(model.run_suffix(row_tok[:, t:-1], picked))
                total += out.gather(-1, row_tok[:, t + 1 :, None])[..., 0].double().sum(1)
            sums[row_ids[idx]] += total.cpu().numpy()
            if progress is not None:
                progress.update(len(idx))
        if t >= min(walk_to, length - 1):
            break
        prev = _log_probs(model.run_step(tokens[:, t : t + 1], states)[:, 0])  # [P, V]
        lp[:, t + 1] = prev.gather(-1, tokens[:, t + 1, None])[:, 0].double().cpu().numpy()
    return lp
