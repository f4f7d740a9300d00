"""Sliding windows: scored spans partition the protein, every token keeps its context."""

from __future__ import annotations

import pytest

from protein_performer.runner.windows import (
    centered_windows,
    default_stride,
    sliding_windows,
)

CASES = [
    (n, w, s)
    for n in (0, 1, 2, 5, 16, 17, 31, 100, 257)
    for w, s in ((4, 2), (8, 4), (8, 1), (8, 8), (16, 5), (64, 32))
]


@pytest.mark.parametrize("n, window, stride", CASES)
def test_causal_windows_partition_and_context(n: int, window: int, stride: int) -> None:
    wins = sliding_windows(n, window, stride)
    scored = [p for start, end, score_from in wins for p in range(score_from, end)]
    assert scored == list(range(n))  # every token exactly once, in order
    for k, (start, end, score_from) in enumerate(wins):
        assert 0 <= start <= score_from < end <= n
        assert end - start <= window
        if n >= window:
            assert end - start == window  # full windows only (the last is right-aligned)
        if k > 0:
            assert score_from - start >= window - stride
    if n <= window:
        assert len(wins) == (1 if n else 0)


@pytest.mark.parametrize("n, window, stride", CASES)
def test_centered_windows_partition_and_context(n: int, window: int, stride: int) -> None:
    wins = centered_windows(n, window, stride)
    scored = [p for start, end, lo, hi in wins for p in range(lo, hi)]
    assert scored == list(range(n))
    half = (window - stride) // 2
    for start, end, lo, hi in wins:
        assert 0 <= start <= lo < hi <= end <= n
        assert end - start <= window
        for p in (lo, hi - 1):
            assert p - start >= min(half, p)  # left context, unless near the protein's start
            assert end - 1 - p >= min(half, n - 1 - p)  # right context, unless near its end


def test_default_stride_and_validation() -> None:
    assert default_stride(1024) == 512
    assert default_stride(1) == 1
    with pytest.raises(ValueError, match="stride"):
        sliding_windows(10, 4, 5)
    with pytest.raises(ValueError, match="stride"):
        centered_windows(10, 4, 0)
    with pytest.raises(ValueError, match="window"):
        sliding_windows(10, 0, 1)


def test_example_layout() -> None:
    # 10 tokens, window 4, stride 2: starts 0, 2, 4, right-aligned 6.
    assert [tuple(w) for w in sliding_windows(10, 4, 2)] == [
        (0, 4, 0),
        (2, 6, 4),
        (4, 8, 6),
        (6, 10, 8),
    ]


def test_window_and_stride_defaults_cap_and_errors():
    from protein_performer.runner.windows import window_and_stride

    assert window_and_stride(64) == (64, 32)
    assert window_and_stride(64, window=100) == (64, 32)  # capped at the model's max_length
    assert window_and_stride(64, window=16, stride=5) == (16, 5)
    with pytest.raises(ValueError, match="window must be >= 2 tokens, got 1"):
        window_and_stride(64, window=1)
    with pytest.raises(ValueError, match=r"stride must be in \[1, window=16\], got 17"):
        window_and_stride(64, window=16, stride=17)
