#!/usr/bin/env bash
# The GPU check of causal FAVOR+ (issue #17), bounded to ~5 minutes on one GPU.
#
#   scripts/device_check.sh                         # cuda: the full check, under $OUT or bench_results/
#   scripts/device_check.sh --out DIR               # write there instead
#   scripts/device_check.sh --device cpu --quick    # the same steps at toy sizes (< 1 min on CPU)
#   scripts/device_check.sh --dry-run               # print the steps, run nothing
#
# Steps (each under `timeout`, within a total budget, --budget seconds, default 285):
#   env     machine, torch, CUDA -> env.json
#   parity  every causal FAVOR+ implementation that runs on the device against the float64
#           loop there: outputs and gradients (1e-10 float64, 2e-4 float32), bf16 layers finite
#   bench   protein-performer-bench attention, causal fwd+bwd, L = 1024 .. 32768, in process:
#           bf16 (exact = SDPA flash, favor_softmax/favor_relu by the chunkwise form [auto] and
#           the loop), fp32 (exact, favor_softmax), TF32 matmuls (favor_softmax), and the
#           chunkwise chunk 64/128/256 at L = 8192, 32768 (bf16) -> bench_*/attention.csv
#   train   200 steps of model=small, causal LM (objective=clm), bf16-mixed, one Hydra
#           multirun over the attention kinds (exact, favor_softmax, favor_relu, then AFT)
#   report  report.md: the tables, the issue's targets (PASS/FAIL), the training table
# A step that fails or times out is recorded in report.md (steps table) and the next runs.
#
# Python: $PYTHON, else .venv/bin/python (`make setup`), else python3; the repository is put
# on PYTHONPATH. torch with CUDA: the machine's torch when it imports with CUDA available. Else
# (constraints.txt pins the CPU build for the development machines) install the CUDA build of
# the same version from the default index, where the Linux x86_64 wheels of torch ship CUDA:
#     $PYTHON -m pip uninstall -y torch && $PYTHON -m pip install torch==2.13.0 --index-url https://pypi.org/simple
# (--install-torch runs exactly that; it needs the network and a few GB, outside the budget).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEVICE=cuda
QUICK=0
DRY=0
INSTALL=0
BUDGET=285
OUT_DIR="${OUT:-$REPO/bench_results}/device_check"

usage() { sed -n '2,8p' "$0"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) OUT_DIR=$2; shift 2 ;;
        --device) DEVICE=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --dry-run) DRY=1; shift ;;
        --install-torch) INSTALL=1; shift ;;
        --budget) BUDGET=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "device_check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [[ "$DEVICE" != cuda && "$DEVICE" != cpu ]]; then
    echo "device_check.sh: --device must be cuda or cpu, got '$DEVICE'" >&2; exit 2
fi

if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ -x "$REPO/.venv/bin/python" ]]; then PY=$REPO/.venv/bin/python
else PY=python3; fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg WANDB_MODE=offline
# --device cpu rehearses the GPU steps: without the C++ CPU kernel (its first build, or a
# build lock left by a killed run, must not eat the budget; auto then runs the Python loop)
[[ $DEVICE == cpu ]] && export PROTEIN_PERFORMER_NO_EXT=1

# sizes: the full check, or the same steps at toy sizes (--quick)
if [[ $QUICK == 1 ]]; then
    LENGTHS="256 512"; CHUNK_LENGTHS="512"; PARITY_L=96; CHUNKS="128"
    BENCH_SHAPE="--heads 2 --head-dim 16 --features 32 --repeats 1 --matmul-size 256"
    TRAIN_KINDS="exact,favor_softmax,favor_relu"
    TRAIN_ARGS="model=tiny model.d_model=32 model.n_layers=1 model.n_heads=2 model.d_ff=64
        data.max_length=64 data.batch_size=4 trainer=cpu trainer.max_steps=2
        trainer.val_check_interval=2 trainer.limit_val_batches=1"
else
    LENGTHS="1024 2048 4096 8192 16384 32768"; CHUNK_LENGTHS="8192 32768"; PARITY_L=700
    CHUNKS="64 128 256"
    BENCH_SHAPE="--repeats 3"
    TRAIN_KINDS="exact,favor_softmax,favor_relu,aft_conv,aft_simple,aft_local,aft_full"
    TRAIN_ARGS="model=small trainer=gpu trainer.devices=1 trainer.strategy=auto
        trainer.max_steps=200 trainer.val_check_interval=200 trainer.limit_val_batches=8"
fi
BENCH="-m protein_performer.cli.bench attention --device $DEVICE --causal true --passes fwd+bwd
    --lengths $LENGTHS $BENCH_SHAPE --in-process --no-peer --max-case-seconds 10"
TRAIN="-m protein_performer.cli.train -m attention=$TRAIN_KINDS objective=clm $TRAIN_ARGS
    trainer.precision=bf16-mixed logger=csv test=false callbacks.progress.mode=lines
    hydra.sweep.dir=$OUT_DIR/train hydra.sweep.subdir=\${model.attention.kind}"

START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }

# step NAME SECONDS CMD...: run CMD under `timeout min(SECONDS, budget left)`, log it, record
# the step's seconds and exit status; a step with < 5 s of budget left is skipped. Every step
# but the report leaves REPORT_S of the budget to the report.
REPORT_S=15
step() {
    local name=$1 secs=$2; shift 2
    local cap; cap=$(left)
    [[ $name == report ]] || cap=$(( cap - REPORT_S ))
    (( secs > cap )) && secs=$cap
    if [[ $DRY == 1 ]]; then echo "[$name, ${secs}s] $*"; return 0; fi
    if (( secs < 5 )); then
        echo "== $name: skipped (time budget spent)"; printf '%s\t0\tskipped\n' "$name" >> "$OUT_DIR/steps.tsv"
        return 0
    fi
    echo "== $name (up to ${secs}s): $*"
    local t0; t0=$(date +%s)
    timeout --kill-after=5 "$secs" "$@" 2>&1 | tee "$OUT_DIR/$name.log"
    local rc=${PIPESTATUS[0]}
    printf '%s\t%s\t%s\n' "$name" "$(( $(date +%s) - t0 ))" "$rc" >> "$OUT_DIR/steps.tsv"
    return 0
}

# bench NAME SECONDS ARGS...: one benchmark run into bench_NAME/, its command kept beside it
bench() {
    local name=$1 secs=$2; shift 2
    [[ $DRY == 1 ]] || { mkdir -p "$OUT_DIR/bench_$name"; echo "$PY $BENCH $* --out ..." > "$OUT_DIR/bench_$name/command.txt"; }
    # shellcheck disable=SC2086
    step "bench_$name" "$secs" "$PY" $BENCH "$@" --out "$OUT_DIR/bench_$name"
}

if [[ $DRY == 0 ]]; then
    mkdir -p "$OUT_DIR"; : > "$OUT_DIR/steps.tsv"
    if ! "$PY" -c "import torch, protein_performer, pytorch_lightning, hydra" 2>/dev/null; then
        echo "device_check.sh: $PY cannot import torch and the project's dependencies; run" \
             "'make setup' (or set PYTHON to an interpreter that has them)" >&2
        exit 2
    fi
    if [[ $DEVICE == cuda ]] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
        if [[ $INSTALL == 1 ]]; then
            "$PY" -m pip uninstall -y torch && "$PY" -m pip install torch==2.13.0 --index-url https://pypi.org/simple
            START=$(date +%s)
        fi
        if ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
            echo "device_check.sh: torch $("$PY" -c 'import torch; print(torch.__version__)') in $PY" \
                 "sees no CUDA device. With a GPU present, the CUDA build is needed:" \
                 "rerun with --install-torch (see the header), or use --device cpu" >&2
            exit 2
        fi
    fi
fi

step env 20 "$PY" "$REPO/scripts/device_check.py" env "$OUT_DIR" "$DEVICE"
step parity 30 "$PY" "$REPO/scripts/device_check.py" parity "$OUT_DIR" "$DEVICE" "$PARITY_L"
bench bf16 60 --dtype bfloat16 --kinds exact favor_softmax favor_relu --impls auto loop
bench fp32 30 --dtype float32 --kinds exact favor_softmax
bench tf32 20 --dtype float32 --kinds favor_softmax --matmul-precision high
for chunk in $CHUNKS; do
    bench "chunk$chunk" 12 --dtype bfloat16 --kinds favor_softmax --impls chunkwise \
        --chunk-size "$chunk" --lengths $CHUNK_LENGTHS
done
# shellcheck disable=SC2086
step train 120 "$PY" $TRAIN
step report "$REPORT_S" "$PY" "$REPO/scripts/device_check.py" report "$OUT_DIR"
[[ $DRY == 1 ]] || echo "device check done in $(( $(date +%s) - START )) s: $OUT_DIR/report.md"
