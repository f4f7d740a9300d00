#!/usr/bin/env python
"""Reproduce the Performer paper's protein table from trained checkpoints.

Evaluates every checkpoint on every split (next-token perplexity for unidirectional models,
masked-token perplexity for bidirectional ones; see protein_performer/evaluation/perplexity.py)
and writes the paper's layout -- rows: models and the "Empirical baseline" (unigram); columns:
(split, accuracy %), (split, perplexity) -- as paper_table.md and paper_table.csv, with every
model's full metrics in paper_metrics.json.

    python scripts/paper_table.py \\
        --ckpt exact_uni=outputs/train/a/checkpoints/last.ckpt \\
        --ckpt favor_relu_bid=outputs/train/b/checkpoints/last.ckpt \\
        --split test=../shared/data/swissprot2014/test.fasta.gz \\
        --split ood=../shared/data/swissprot2014/test_ood.fasta.gz \\
        --out outputs/paper_table

A --ckpt without ``label=`` is labelled from the checkpoint (attention kind + uni/bid);
--sweep DIR adds every ``**/checkpoints/last.ckpt`` under a sweep directory (for example the
multirun of ``attention=exact,favor_softmax,favor_relu objective=mlm,clm``). Without --split
the embedded data/sample/valid.fasta.gz is the only split.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _pair(text: str) -> tuple[str | None, str]:
    label, sep, path = text.partition("=")
    return (label, path) if sep else (None, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "--ckpt",
        action="append",
        default=[],
        metavar="[LABEL=]PATH",
        help="a checkpoint, optionally labelled (repeat)",
    )
    parser.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="DIR",
        help="add every **/checkpoints/last.ckpt under DIR (repeat)",
    )
    parser.add_argument(
        "--split",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="an evaluation split: FASTA file or prepared store (repeat)",
    )
    parser.add_argument("--out", default="outputs/paper_table", help="output directory")
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument("--n-maskings", type=int, default=3)
    parser.add_argument("--stride", type=int, default=None)
    parser.add_argument(
        "--max-proteins",
        type=int,
        default=None,
        help="only the first N proteins of each split (quick looks)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--per-protein", action="store_true", help="also write per-protein CSVs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from protein_performer.evaluation.paper_table import evaluate_paper_table, table_markdown
    from protein_performer.evaluation.perplexity import EvalOptions
    from protein_performer.evaluation.unigram import EMBEDDED_VALID

    checkpoints = [_pair(c) for c in args.ckpt]
    for sweep in args.sweep:
        found = sorted(Path(sweep).glob("**/checkpoints/last.ckpt"))
        if not found:
            parser.error(f"--sweep {sweep}: no **/checkpoints/last.ckpt found")
        checkpoints += [(None, str(p)) for p in found]
    if not checkpoints:
        parser.error("give at least one --ckpt or --sweep")
    splits: dict[str, str] = {}
    for text in args.split:
        name, path = _pair(text)
        if not name:
            parser.error(f"--split needs NAME=PATH, got {text!r}")
        splits[name] = path
    splits = splits or {"valid": str(EMBEDDED_VALID)}
    options = EvalOptions(
        batch_tokens=args.batch_tokens,
        n_maskings=args.n_maskings,
        stride=args.stride,
        max_proteins=args.max_proteins,
        device=args.device,
    )
    try:
        table = evaluate_paper_table(
            checkpoints, splits, out_dir=args.out, options=options, per_protein=args.per_protein
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"paper_table.py: error: {err}", file=sys.stderr)
        return 2
    print(table_markdown(table))
    print(f"wrote {Path(args.out) / 'paper_table.md'} and paper_table.csv, paper_metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
