"""``protein-performer-bench attention``: time and peak memory of every attention kind vs L.

Parses the flags into :class:`~protein_performer.benchmarks.attention.AttentionBench` and runs
:func:`~protein_performer.benchmarks.attention.bench_attention` (what is measured and how is
documented there).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from protein_performer.benchmarks.attention import PEER, AttentionBench, bench_attention
from protein_performer.errors import InputError

D = AttentionBench()  # the defaults


def _parser() -> argparse.ArgumentParser:
    from protein_performer.attention.favor.causal import CAUSAL_IMPLS

    p = argparse.ArgumentParser(prog="protein-performer-bench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("attention", help="time and peak memory of attention kinds vs length")
    a.add_argument(
        "--kinds",
        nargs="+",
        default=D.kinds,
        help="attention kinds (default: all registered), plus 'performer_pytorch' for the peer",
    )
    a.add_argument("--lengths", nargs="+", type=int, default=D.lengths)
    a.add_argument(
        "--causal",
        nargs="+",
        type=lambda s: s.lower() in ("1", "true", "causal"),
        default=D.causal,
        help="false/true (default: both)",
    )
    a.add_argument("--passes", nargs="+", choices=["fwd", "fwd+bwd"], default=D.passes)
    a.add_argument("--batch", type=int, default=D.batch)
    a.add_argument("--heads", type=int, default=D.heads)
    a.add_argument("--head-dim", type=int, default=D.head_dim)
    a.add_argument("--features", type=int, default=D.features)
    a.add_argument(
        "--chunk-size",
        type=int,
        default=D.chunk_size,
        help="causal FAVOR+ chunk size (default: the implementation's, favor.causal.DEFAULT_CHUNK)",
    )
    a.add_argument(
        "--impls",
        nargs="+",
        choices=CAUSAL_IMPLS,
        default=D.impls,
        help="causal FAVOR+ implementations to time (default: auto, the library's choice)",
    )
    a.add_argument(
        "--matmul-precision",
        choices=["highest", "high", "medium"],
        default=D.matmul_precision,
        help="torch.set_float32_matmul_precision in each case (high: TF32 on CUDA)",
    )
    a.add_argument("--device", default="cuda" if _cuda() else "cpu")
    a.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=D.dtype)
    a.add_argument("--repeats", type=int, default=D.repeats, help="timed runs after the warm-up")
    a.add_argument(
        "--max-case-seconds",
        type=float,
        default=D.max_case_seconds,
        help="stop timing a case after this long; longer L of that series are skipped",
    )
    a.add_argument("--timeout", type=float, default=D.timeout, help="per-case subprocess timeout")
    a.add_argument(
        "--no-peer",
        dest="peer",
        action="store_false",
        help=f"do not add the {PEER} peer even when importable",
    )
    a.add_argument(
        "--malloc-cache",
        action="store_true",
        help="run each case with glibc keeping freed memory (MALLOC_MMAP_THRESHOLD_ etc.), "
        "as jemalloc/tcmalloc would; applies to every kind alike",
    )
    a.add_argument(
        "--matmul-size",
        type=int,
        default=D.matmul_size,
        help="n of the n x n float32 matmul whose rate is printed beside the cases "
        "(smaller: quicker toy runs)",
    )
    a.add_argument(
        "--in-process",
        action="store_true",
        help="run the cases in this process (CUDA: its peak memory is reset per case; "
        "saves the ~3 s start per case; no per-case timeout; CPU peaks are not "
        "comparable this way)",
    )
    a.add_argument("--out", default=D.out)
    return p


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def settings(args: argparse.Namespace) -> AttentionBench:
    """The parsed ``attention`` flags as the benchmark's typed settings."""
    return AttentionBench(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(AttentionBench)}
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.command == "attention":
        try:
            bench_attention(settings(args))
        except InputError as exc:  # a bad flag value, named
            raise SystemExit(str(exc)) from None


if __name__ == "__main__":
    main()
