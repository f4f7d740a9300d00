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

demo: setup
	$(BIN)/protein-performer-data stats data/sample/train.fasta.gz --out outputs/demo_stats

test: setup
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

bench: setup
	$(BIN)/protein-performer-bench attention

clean:
	rm -rf $(VENV) outputs multirun bench_results .pytest_cache
