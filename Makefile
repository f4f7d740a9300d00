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

# The main job on the embedded corpus: train a tiny FAVOR+-ReLU causal LM (experiment=demo: the
# fastest learner per CPU-minute measured, docs/benchmarks.md), evaluate it against the unigram
# baseline, compare its attention with BLOSUM62.
DEMO := outputs/demo
demo: setup
	rm -rf $(DEMO)
	$(BIN)/protein-performer-data stats data/sample/train.fasta.gz --out $(DEMO)/data_stats
	$(BIN)/protein-performer-train experiment=demo hydra.run.dir=$(DEMO)/train
	$(BIN)/protein-performer-eval ckpt_path=$(DEMO)/train/checkpoints/last.ckpt hydra.run.dir=$(DEMO)/eval
	# threshold 0: a model trained for minutes attends diffusely (no weight reaches the default 0.1);
	# the same model at random init is analysed beside it (the null), and FAVOR+'s error on its q, k
	$(BIN)/protein-performer-analyze ckpt_path=$(DEMO)/train/checkpoints/last.ckpt hydra.run.dir=$(DEMO)/analyze threshold=0 min_total_weight=0 favor_error=true
	$(BIN)/python scripts/demo_summary.py $(DEMO)

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
