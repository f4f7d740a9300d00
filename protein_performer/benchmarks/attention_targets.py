"""The attention benchmark's FLOP counts and the issue's targets, judged on a run's table.

GFLOP/s counts 8 L m d FLOPs per head for a FAVOR+ forward pass (4 L m d for the two
feature maps, 2 L m d for phi(K)^T V, 2 L m d for phi(Q) (.)) and 3x that for forward +
backward; exact attention counts 4 L^2 d per head (2 L^2 d causal), also 3x for fwd+bwd.
"""

from __future__ import annotations

import math

from protein_performer.benchmarks.attention_case import PEER


def flops(kind: str, causal: bool, backward: bool, spec: dict) -> float | None:
    b, h, length, d, m = (spec[x] for x in ("batch", "heads", "length", "head_dim", "features"))
    if kind.startswith("favor") or kind == PEER:
        fwd = 8 * length * m * d
    elif kind == "exact":
        fwd = (2 if causal else 4) * length * length * d
    else:
        return None
    return fwd * b * h * (3 if backward else 1)


def check_targets(df) -> list[str]:
    """The issue's targets, evaluated on this run's numbers (n/a where not measured)."""

    def t(kind, mode, pas, length, col="time_ms"):
        sel = df[(df.kind == kind) & (df["mode"] == mode) & (df["pass"] == pas) & (df.L == length)]
        if col not in sel or sel.empty or sel[col].isna().all():
            return math.nan
        return float(sel[col].iloc[0])

    def verdict(ok):
        return "n/a " if ok is None else ("PASS" if ok else "FAIL")

    fb = "fwd+bwd"

    def min_ratio(slow: str, fast: str, mode: str, shortest: int = 1024) -> float:
        """min over L >= shortest of time(slow) / time(fast), fwd+bwd, where both were
        measured (NaN where none was)."""
        ls = sorted(set(df.L[df.L >= shortest]))
        rs = [t(slow, mode, fb, x) / t(fast, mode, fb, x) for x in ls]
        rs = [r for r in rs if r == r]
        return min(rs) if rs else math.nan

    out = ["targets (float32, this run):"]
    r = t("exact", "bidirectional", fb, 8192) / t("favor_softmax", "bidirectional", fb, 8192)
    out.append(
        f"  {verdict(None if r != r else r >= 6)} bidirectional favor_softmax fwd+bwd at L=8192 "
        f">= 6x faster than exact: {r:.1f}x"
    )
    r = min_ratio("exact", "favor_softmax", "bidirectional")
    out.append(
        f"  {verdict(None if r != r else r > 1)} bidirectional favor faster than exact from "
        f"L=1024: min speedup {r:.2f}x"
    )
    r = t("exact", "causal", fb, 8192) / t("favor_softmax", "causal", fb, 8192)
    out.append(
        f"  {verdict(None if r != r else r >= 3)} causal favor_softmax fwd+bwd at L=8192 "
        f">= 3x faster than causal exact: {r:.1f}x"
    )
    r = min_ratio("exact", "favor_softmax", "causal", 4096)
    out.append(
        f"  {verdict(None if r != r else r > 1)} causal favor faster than causal exact from "
        f"L=4096: min speedup {r:.2f}x"
    )
    r = t("favor_softmax", "causal", fb, 8192) / t("favor_softmax", "bidirectional", fb, 8192)
    out.append(
        f"  {verdict(None if r != r else r <= 2)} causal within 2x of bidirectional favor at "
        f"L=8192: {r:.2f}x"
    )
    m32 = t("favor_softmax", "causal", fb, 32768, "peak_mib")
    m8 = t("favor_softmax", "causal", fb, 8192, "peak_mib")
    out.append(
        f"  {verdict(None if m32 != m32 or m8 != m8 else m32 <= 4.5 * m8)} causal memory linear: "
        f"peak(32768)/peak(8192) = {m32 / m8:.2f} (<= 4.5)"
    )
    out.append(
        f"  {verdict(None if m32 != m32 else m32 < 2048)} causal fwd+bwd peak at L=32768 "
        f"< 2 GiB: {m32:.0f} MiB"
    )
    if "pct_matmul_peak" in df:
        for mode in ("bidirectional", "causal"):
            # the library's own choice (auto), not the forced implementations ("kind:impl")
            sel = df[
                df.kind.isin(["favor_softmax", "favor_relu"])
                & (df["mode"] == mode)
                & (df.L >= 4096)
            ]
            pct = sel["pct_matmul_peak"].dropna()
            line = (
                f"  {verdict(None if pct.empty else pct.min() >= 40)} {mode} FAVOR+ >= 40% of "
                f"matmul peak at L>=4096: min {pct.min() if not pct.empty else math.nan:.1f}%"
            )
            beside = sel["pct_matmul_beside"].dropna() if "pct_matmul_beside" in sel else pct[:0]
            if not beside.empty:
                line += f" (of the rate measured beside each case: min {beside.min():.1f}%)"
            out.append(line)

    for mode in ("bidirectional", "causal"):
        r = min_ratio(PEER, "favor_softmax", mode)
        out.append(
            f"  {verdict(None if r != r else r >= 1.5)} {mode} favor_softmax >= 1.5x the "
            f"{PEER} peer: min {r:.2f}x"
        )
    for kind in ("aft_simple", "aft_conv"):
        rs = [min_ratio("favor_softmax", kind, mode) for mode in ("bidirectional", "causal")]
        rs = [r for r in rs if r == r]
        r = min(rs) if rs else math.nan
        out.append(
            f"  {verdict(None if r != r else r > 1)} {kind} faster than favor_softmax at every "
            f"L>=1024: min {r:.2f}x"
        )
    return out
