"""fp32 vs bf16 autocast: one training step (forward + backward) of a causal PerformerLM on CPU,
interleaved in one process, best of 4 pairs; prints ms per step and the speed-up per kind.

    python scripts/bench_precision.py

Model: d 128, 4 layers, 8 heads, d_ff 512, batch 32 x 256 (the cpu_study recipe's shape).
"""

import time

import torch
import torch.nn.functional as F

from protein_performer.attention import AttentionConfig
from protein_performer.model.config import ModelConfig
from protein_performer.model.lm import PerformerLM

torch.manual_seed(0)
for kind in ["exact", "favor_relu"]:
    cfg = ModelConfig(
        d_model=128,
        n_layers=4,
        n_heads=8,
        d_ff=512,
        dropout=0.0,
        max_length=256,
        causal=True,
        attention=AttentionConfig(kind=kind, nb_features=64),
    )
    m = PerformerLM(cfg)
    x = torch.randint(4, 24, (32, 256))
    mask = torch.ones(32, 256, dtype=torch.bool)

    def step(bf, m=m, x=x, mask=mask):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf):
            lo = m(x, mask)
        loss = F.cross_entropy(lo.float().reshape(-1, lo.shape[-1]), x.reshape(-1))
        loss.backward()

    res = {False: [], True: []}
    for _r in range(4):
        for bf in (False, True):
            step(bf)
            t = time.perf_counter()
            step(bf)
            step(bf)
            res[bf].append((time.perf_counter() - t) / 2)
    print(
        kind,
        "fp32 %.0f ms" % (min(res[False]) * 1000),
        "bf16 %.0f ms" % (min(res[True]) * 1000),
        "speedup %.2f" % (min(res[False]) / min(res[True])),
    )
