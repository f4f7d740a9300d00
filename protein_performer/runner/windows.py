"""Sliding windows over proteins longer than the model: every token scored exactly once.

A protein of ``n_tokens`` tokens (``<cls>`` + residues + ``<eos>``) that does not fit the
model's ``window`` (its ``max_length``) is cut into overlapping windows of ``window`` tokens
that start every ``stride`` tokens. Each window scores only part of its tokens, so that the
scored spans partition ``[0, n_tokens)`` and every scored token keeps context:

* causal (:func:`sliding_windows`): a window scores the tokens after the previous window's
  end, so each of them sees at least ``window - stride`` tokens before it (all of them in the
  first window), as in the standard strided evaluation of causal LMs;
* bidirectional (:func:`centered_windows`): neighbouring windows split their overlap in the
  middle, so each scored token sees at least ``(window - stride) // 2`` tokens on either side
  (except at the protein's own ends).

The last window is right-aligned (it ends at ``n_tokens`` and is ``window`` long), which only
adds context. The default stride is ``window // 2``.
"""

from __future__ import annotations

from typing import NamedTuple


class CausalWindow(NamedTuple):
    """Tokens ``[start, end)`` are fed to the model; targets ``[score_from, end)`` are scored."""

    start: int
    end: int
    score_from: int


class CenteredWindow(NamedTuple):
    """Tokens ``[start, end)`` are fed to the model; ``[score_from, score_to)`` are scored."""

    start: int
    end: int
    score_from: int
    score_to: int


def default_stride(window: int) -> int:
    """Half the window (at least 1 token)."""
    return max(1, window // 2)


def window_and_stride(
    max_length: int, window: int | None = None, stride: int | None = None
) -> tuple[int, int]:
    """The window (``window`` capped at the model's ``max_length``, default it) and the stride
    (default :func:`default_stride`), checked: ``window >= 2``, ``1 <= stride <= window``."""
    window = min(window or max_length, max_length)
    if window < 2:
        raise ValueError(f"window must be >= 2 tokens, got {window}")
    stride = stride or default_stride(window)
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in [1, window={window}], got {stride}")
    return window, stride


def _check(n_tokens: int, window: int, stride: int) -> None:
    if n_tokens < 0:
        raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in [1, window={window}], got {stride}")


def _starts(n_tokens: int, window: int, stride: int) -> list[int]:
    """Window starts 0, stride, 2*stride, ...; the last one right-aligned to end at n_tokens."""
    if n_tokens <= window:
        return [0]
    starts = [0]
    while starts[-1] + window < n_tokens:
        starts.append(starts[-1] + stride)
    # Right-align the last window: it keeps `window` tokens and more context than a short one.
    starts[-1] = n_tokens - window
    return starts


def sliding_windows(n_tokens: int, window: int, stride: int) -> list[CausalWindow]:
    """Causal windows ``(start, end, score_from)`` whose scored spans partition ``[0, n_tokens)``.

    The model reads ``tokens[start:end]``; tokens ``[score_from, end)`` are the scored targets,
    each predicted from ``tokens[start:target]``. The first window has ``score_from == 0``
    (position 0, ``<cls>``, has nothing before it, so a causal scorer skips it); every later
    window has ``score_from - start >= window - stride`` tokens of context before its first
    target. ``1 <= stride <= window``.
    """
    _check(n_tokens, window, stride)
    if n_tokens == 0:
        return []
    out: list[CausalWindow] = []
    prev_end = 0
    for start in _starts(n_tokens, window, stride):
        end = min(start + window, n_tokens)
        if end > prev_end:
            out.append(CausalWindow(start, end, prev_end))
            prev_end = end
    return out


def centered_windows(n_tokens: int, window: int, stride: int) -> list[CenteredWindow]:
    """Bidirectional windows ``(start, end, score_from, score_to)`` partitioning ``[0, n_tokens)``.

    Neighbouring windows split their overlap at its midpoint, so a scored token has at least
    ``(window - stride) // 2`` tokens of context on each side unless it is within that
    distance of the protein's start or end. ``1 <= stride <= window``.
    """
    _check(n_tokens, window, stride)
    if n_tokens == 0:
        return []
    spans = [(s, min(s + window, n_tokens)) for s in _starts(n_tokens, window, stride)]
    # Boundaries between consecutive windows: the middle of their overlap.
    cuts = [0] + [(nxt[0] + cur[1]) // 2 for cur, nxt in zip(spans, spans[1:])] + [n_tokens]
    return [
        CenteredWindow(start, end, cuts[k], cuts[k + 1])
        for k, (start, end) in enumerate(spans)
        if cuts[k + 1] > cuts[k]
    ]
