"""A causal walk from a prefix state (``run_step`` over the prefix, ``run_suffix`` over the
rest) equals the full causal forward (float64) for every decodable kind, rows of one batch
branching from repeated prefix states; the prefix states are left as they were."""

from __future__ import annotations

import pytest
import torch
from common import tiny_lm

from protein_performer.attention.favor.decoding import (
    favor_init_state,
    favor_softmax_step,
    favor_softmax_suffix,
)

CAUSAL_KINDS = ["exact", "favor_softmax", "favor_relu", "aft_simple", "aft_local", "aft_conv"]


@pytest.mark.parametrize("position", ["learned", "rotary"])
@pytest.mark.parametrize("kind", CAUSAL_KINDS)
@pytest.mark.parametrize("prefix", [0, 1, 9])
def test_suffix_logits_equal_full_forward(kind: str, position: str, prefix: int) -> None:
    layer = {"chunk_size": 4, "aft_window": 5, "aft_conv_kernel": 4}
    model = tiny_lm(kind, attention=layer, max_length=24, causal=True, position=position)
    model = model.double()
    with torch.no_grad():  # non-trivial weights: AFT biases start at 0 otherwise
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    g = torch.Generator().manual_seed(1)
    heads = torch.randint(6, 26, (2, prefix), generator=g)  # two distinct prefixes
    tails = torch.randint(6, 26, (5, 24 - prefix), generator=g)
    parent = torch.tensor([0, 1, 1, 0, 1])  # five rows branching from them
    tokens = torch.cat([heads[parent], tails], dim=1)
    states = model.decoding_states(2)
    with torch.no_grad():
        for t in range(prefix):
            model.run_step(heads[:, t : t + 1], states)
        picked = [s.select(parent) for s in states]
        before = [[x.clone() for x in s.tensors()] for s in picked]
        got = model.run_suffix(tails, picked)
        full = model(tokens)
    torch.testing.assert_close(got, full[:, prefix:], rtol=0, atol=1e-9)
    for s, kept in zip(picked, before):
        assert s.position == prefix
        for x, y in zip(s.tensors(), kept):
            # unfilled cache rows are torch.empty memory: compare bit for bit, NaN == NaN
            torch.testing.assert_close(x, y, rtol=0, atol=0, equal_nan=True)


def test_softmax_suffix_with_growing_keys_equals_steps() -> None:
    """Suffix keys of growing norm raise the running maximum inside the suffix: one pass
    gives what the steps give, the carried prefix sums rescaled per query."""
    g = torch.Generator().manual_seed(0)
    b, h, n, d, m = 2, 2, 30, 8, 16
    q, k, v = (torch.randn(b, h, n, d, generator=g, dtype=torch.float64) for _ in range(3))
    k = k * torch.linspace(0.2, 4.0, n, dtype=torch.float64)[:, None]
    w = torch.randn(m, d, generator=g, dtype=torch.float64)
    state = favor_init_state(b, h, m, d, q.device, q.dtype)
    steps = [
        favor_softmax_step(
            q[:, :, t : t + 1], k[:, :, t : t + 1], v[:, :, t : t + 1], w, state, eps=1e-6
        )
        for t in range(10)
    ]
    assert len(steps) == 10
    kept = state.select(torch.arange(b))
    got = favor_softmax_suffix(q[:, :, 10:], k[:, :, 10:], v[:, :, 10:], w, kept, eps=1e-6)
    want = torch.cat(
        [
            favor_softmax_step(
                q[:, :, t : t + 1], k[:, :, t : t + 1], v[:, :, t : t + 1], w, state, eps=1e-6
            )
            for t in range(10, n)
        ],
        dim=2,
    )
    assert float(state.run_max.max()) > float(kept.run_max.max())  # the maximum did grow
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
