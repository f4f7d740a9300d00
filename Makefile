# protein-performer: `make demo` (set up + main job) and `make test` (set up + test suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Everything a fresh machine needs; torch pinned to the local CPU build by constraints.txt.
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 needed, found " + sys.version'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -c constraints.txt -e '.[test]'
	touch $(STAMP)

# The main job on the embedded 50,000-protein corpus (data/sample50k), in six stages with
# progress and an ETA (scripts/demo.py): corpus statistics, training a tiny FAVOR+ causal LM
# (experiment=demo: the steps a 7.5-minute budget holds, <= 4,000), perplexity against the unigram
# baseline on held-out proteins, attention vs BLOSUM62 beside the same model at random init
# (the null) and FAVOR+'s error on its own q, k, the Abeta42 assay beside BLOSUM62 and one
# contact map (benchmark data fetched once into data/benchmarks; offline: skipped in one line),
# then one screen of summary and outputs/demo/summary.png. About 10 minutes on 2 cores, set-up
# excluded (docs/benchmarks.md).
DEMO := outputs/demo
demo: setup
	$(BIN)/python scripts/demo.py --out $(DEMO)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

bench: setup
	$(BIN)/protein-performer-bench attention

clean:
	rm -rf $(VENV) outputs multirun bench_results .pytest_cache
