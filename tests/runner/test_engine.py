"""Engine: fn sees the right rows and indices, outputs equal the model's own forward;
PerformerLM.run returns what forward / attention_maps / hidden_states did (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protein_performer.data.alphabet import ALPHABET
from protein_performer.data.batching import Batch, BatchConverter
from protein_performer.model import ModelConfig, PerformerLM
from protein_performer.runner import Engine, ModelOutputs

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(kind: str = "exact", **kw) -> PerformerLM:
    values = dict(
        d_model=16,
        n_layers=3,
        n_heads=2,
        d_ff=32,
        dropout=0.0,
        max_length=40,
        attention={"kind": kind, "nb_features": 8, "chunk_size": 4},
    )
    values.update(kw)
    torch.manual_seed(0)
    return PerformerLM(ModelConfig.from_dict(values)).double().eval()


def rows(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    lo, hi = int(ALPHABET.standard_idx[0]), int(ALPHABET.standard_idx[-1])
    return [ALPHABET.wrap(rng.integers(lo, hi + 1, size=int(m))) for m in rng.integers(3, 30, n)]


def test_engine_calls_fn_with_rows_indices_and_forward_logits():
    model = tiny()
    data = rows(11)
    seen: dict[int, torch.Tensor] = {}
    calls = []

    def fn(batch: Batch, out: ModelOutputs) -> None:
        assert torch.is_inference_mode_enabled()
        calls.append(batch.index.tolist())
        for b, i in enumerate(batch.index.tolist()):
            n = len(data[i])
            assert batch.tokens[b, :n].tolist() == data[i].tolist()
            assert batch.mask[b].sum() == n
            seen[i] = out.logits[b, :n].clone()
        assert out.hidden == {} and out.attention == {}

    Engine(model, "cpu").run(data, fn, budget=100)
    assert sorted(i for c in calls for i in c) == list(range(11)) and len(calls) > 2
    for i, r in enumerate(data):
        t = torch.from_numpy(r)[None]
        with torch.no_grad():
            want = model(t)[0]
        torch.testing.assert_close(seen[i], want, atol=1e-12, rtol=0)


def test_engine_hidden_and_attention_match_model_methods():
    model = tiny("favor_relu", position="rotary")
    data = rows(5, seed=1)
    got: dict[int, ModelOutputs] = {}

    def fn(batch: Batch, out: ModelOutputs) -> None:
        for b, i in enumerate(batch.index.tolist()):
            n = len(data[i])
            got[i] = ModelOutputs(
                logits=None,
                hidden={k: v[b, :n] for k, v in out.hidden.items()},
                attention={k: v[b, :, :n, :n] for k, v in out.attention.items()},
            )

    engine = Engine(model, torch.device("cpu"))
    assert engine.device == torch.device("cpu") and not model.training
    engine.run(
        data,
        fn,
        budget=40 * 40 * 2,
        cost="quadratic",
        logits=False,
        hidden_layers=(0, -1),
        attention_layers=(1,),
    )
    for i, r in enumerate(data):
        t = torch.from_numpy(r)[None]
        h0, hl = model.hidden_states(t, None, (0, -1))
        (a1,) = model.attention_maps(t, None, [1])
        torch.testing.assert_close(got[i].hidden[0], h0[0], atol=1e-12, rtol=0)
        torch.testing.assert_close(got[i].hidden[-1], hl[0], atol=1e-12, rtol=0)
        torch.testing.assert_close(got[i].attention[1], a1[0], atol=1e-12, rtol=0)


def test_engine_accepts_a_plain_callable_module_and_advances_progress():
    class Uniform(torch.nn.Module):
        def forward(self, tokens, mask):
            return torch.zeros(*tokens.shape, len(ALPHABET))

    class Count:
        n = 0

        def update(self, k):
            self.n += k

    progress = Count()
    shapes = []
    Engine(Uniform(), "cpu").run(
        rows(6), lambda b, o: shapes.append(o.logits.shape), budget=64, progress=progress
    )
    assert progress.n == 6 and all(s[-1] == len(ALPHABET) for s in shapes)
    with pytest.raises(TypeError, match="logits only"):
        Engine(Uniform(), "cpu").run(rows(2), lambda b, o: None, hidden_layers=(0,))


# --------------------------------------------------------------------------------------------
# PerformerLM.run against the three walks it replaced (written out here as references).


def reference_walks(model: PerformerLM, tokens, mask):
    """The pre-run() code of forward, attention_maps (all layers) and hidden_states (all)."""
    x = model.embed(tokens)
    maps, states = [], []
    for index, block in enumerate(model.blocks):
        maps.append(block.attn.attention_matrix(block.norm1(x), mask, model.rotary))
        x = block(x, mask, model.rotary)
        states.append(model.norm(x) if index == len(model.blocks) - 1 else x)
    return model.logits(x), maps, states


@pytest.mark.parametrize("kind,position", [("exact", "learned"), ("favor_softmax", "rotary")])
@pytest.mark.parametrize("causal", [False, True])
def test_run_returns_the_old_logits_hidden_and_attention(kind, position, causal):
    model = tiny(kind, position=position, causal=causal)
    batch = BatchConverter()(rows(4, seed=2))
    t, m = batch.tokens, batch.mask
    with torch.no_grad():
        logits, maps, states = reference_walks(model, t, m)
        out = model.run(t, m, hidden_layers=(0, 1, 2, -1), attention_layers=(-1, 0, 1, 2))
    assert out.logits.dtype == torch.float64
    torch.testing.assert_close(out.logits, logits, atol=0, rtol=0)
    torch.testing.assert_close(model(t, m), logits, atol=0, rtol=0)
    for i in range(3):
        torch.testing.assert_close(out.hidden[i], states[i], atol=0, rtol=0)
        torch.testing.assert_close(out.attention[i], maps[i], atol=0, rtol=0)
    torch.testing.assert_close(out.hidden[-1], states[2], atol=0, rtol=0)
    torch.testing.assert_close(out.attention[-1], maps[2], atol=0, rtol=0)
    for got, want in zip(model.attention_maps(t, m), maps):
        torch.testing.assert_close(got, want, atol=0, rtol=0)
    for got, want in zip(model.hidden_states(t, m, (2, 0)), (states[2], states[0])):
        torch.testing.assert_close(got, want, atol=0, rtol=0)
    # attention only: the walk stops after the last requested layer, no logits
    only = model.run(t, m, logits=False, attention_layers=(0,))
    assert only.logits is None and list(only.attention) == [0] and only.hidden == {}
    qkv = model.run(t, m, logits=False, qkv_layers=(1,)).qkv[1]
    assert [x.shape for x in qkv] == [(4, 2, t.shape[1], 8)] * 3


def test_run_checks_layers_and_restores_training_mode():
    model = tiny().train()
    t = torch.from_numpy(rows(1)[0])[None]
    with pytest.raises(ValueError, match="layer 3 out of range"):
        model.run(t, hidden_layers=(3,))
    model.hidden_states(t, None, (-1,))
    model.attention_maps(t)
    assert model.training
