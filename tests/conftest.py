"""Fixtures shared by the whole suite.

- every test starts from the same random state (torch, numpy, random seeded with 0), so a
  test on random inputs sees the same inputs on every run and its bound can be tight;
- ``one_thread``: tiny models run single-threaded (thread hand-offs cost more than they save);
- ``swissprot``: the shared Swiss-Prot split, skipping cleanly where ../shared is absent;
- ``cpp_kernel``: the C++ causal FAVOR+ kernel; it must build wherever a C++ compiler is
  installed (a failed build is a test failure, not a skip).
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SWISSPROT  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def swissprot() -> Path:
    """../shared/data/swissprot2014 (train/valid/test/test_ood FASTA), or a skip."""
    if not SWISSPROT.is_dir():
        pytest.skip(f"{SWISSPROT} is absent (../shared/data is not on this machine)")
    return SWISSPROT


def have_cpp_compiler() -> bool:
    return any(shutil.which(c) for c in ("c++", "g++", "clang++"))


@pytest.fixture
def cpp_kernel():
    """The built C++ causal kernel's ops; skips only on a machine without a C++ compiler."""
    from protein_performer.attention.favor import causal_cpu as favor_causal_cpu

    if not have_cpp_compiler():
        pytest.skip("no C++ compiler: the causal kernel runs in Python (tested separately)")
    ops = favor_causal_cpu._ops()
    assert ops is not None, "the C++ causal FAVOR+ kernel failed to build (see the warning)"
    return ops
