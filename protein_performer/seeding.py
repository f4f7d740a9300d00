"""One seed hash for every reproducible draw: features, masking, crops, sampler orders.

``mix_seed(base seed, layer, step)`` and the like give the same value on every DDP rank and
dataloader worker without communication, and never depend on global RNG state.
"""

from __future__ import annotations

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (a splitmix64 chain): distinct tuples -> unrelated seeds.

    Fits ``torch.Generator.manual_seed`` and ``numpy.random.default_rng``; negative and
    oversized integers are taken modulo 2^64.
    """
    h = 0
    for v in values:
        h = _splitmix64(h ^ (int(v) & _MASK64))
    return h & 0x7FFFFFFFFFFFFFFF
