"""Attention benchmark (same as ``protein-performer-bench attention``); see docs/benchmarks.md.

python scripts/bench_attention.py --lengths 256 1024 4096 --kinds exact favor_softmax
"""

import sys

from protein_performer.cli.bench import main

if __name__ == "__main__":
    main(["attention", *sys.argv[1:]])
