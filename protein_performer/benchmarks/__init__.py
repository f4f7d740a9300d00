"""Measurements behind docs/benchmarks.md, as library code: the CLI (``cli/bench.py``) and
scripts/ parse arguments and call these."""
