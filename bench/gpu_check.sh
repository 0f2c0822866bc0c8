#!/usr/bin/env bash
# The GPU check: one command on a CUDA machine, at most ~8 minutes, one JSON.
#
#   bash bench/gpu_check.sh --pack      here, with the data: wheels + CIFAR-10 parts (<= 60 MiB
#                                       each) into bench/gpu_payload/ (git-ignored)
#   bash bench/gpu_check.sh --dry-run   any CPU machine: pack/unpack round trip on a synthetic
#                                       CIFAR, the arguments, the plan; writes the JSON
#   bash bench/gpu_check.sh             the CUDA machine: install the wheels (no network),
#                                       unpack CIFAR-10, run the GPU-marked tests, then
#                                       experiment=airbench94 for each seed with compile=false
#                                       and compile=true; writes the JSON
#
# Options: --payload DIR (bench/gpu_payload), --out FILE (bench/results/gpu_check.json),
# --seeds N (3), --budget-s S (480: the whole check; each step gets a timeout from what is
# left), --data-dir DIR (for --pack: $CNNLAB_DATA_DIR, else ../shared/data).
# docs/machine-kinds.md says how the payload travels to the device machine.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python

COMMAND="bash bench/gpu_check.sh $*"
MODE=run
PAYLOAD=bench/gpu_payload
OUT=bench/results/gpu_check.json
SEEDS=3
BUDGET_S=480
DATA_DIR="${CNNLAB_DATA_DIR:-../shared/data}"
# Versions as pinned by pyproject's ranges and installed here; pure-Python wheels.
WHEELS=(hydra-core==1.3.8 omegaconf==2.3.1)
SDIST_WHEELS=(antlr4-python3-runtime==4.9.3)  # sdist only on PyPI: built into a wheel here

die() {
  echo "gpu_check: error: $*" >&2
  exit 2
}

is_int() { [[ "$1" =~ ^[0-9]+$ ]]; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) MODE=dry-run ;;
    --pack) MODE=pack ;;
    --payload | --out | --seeds | --budget-s | --data-dir)
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$1" in
        --payload) PAYLOAD="$2" ;;
        --out) OUT="$2" ;;
        --seeds) SEEDS="$2" ;;
        --budget-s) BUDGET_S="$2" ;;
        --data-dir) DATA_DIR="$2" ;;
      esac
      shift
      ;;
    -h | --help)
      sed -n '2,16p' "$0"
      exit 0
      ;;
    *) die "unknown argument '$1' (use --dry-run, --pack, --payload, --out, --seeds, --budget-s, --data-dir)" ;;
  esac
  shift
done
is_int "$SEEDS" && [ "$SEEDS" -ge 1 ] && [ "$SEEDS" -le 10 ] || die "--seeds must be 1..10 (got '$SEEDS')"
is_int "$BUDGET_S" && [ "$BUDGET_S" -ge 120 ] || die "--budget-s must be a whole number >= 120 (got '$BUDGET_S')"
mkdir -p "$(dirname "$OUT")" || die "cannot create the folder of --out $OUT"

export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
RUN_ARGS=(experiment=airbench94 callbacks.rich_progress_bar=null)

if [ "$MODE" = pack ]; then
  [ -d "$DATA_DIR/cifar-10-batches-py" ] || die "$DATA_DIR/cifar-10-batches-py not found (--data-dir)"
  "$PYTHON" bench/gpu_pack.py pack --data-dir "$DATA_DIR" --payload "$PAYLOAD"
  mkdir -p "$PAYLOAD/wheels"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp -d "$PAYLOAD/wheels" "${WHEELS[@]}"
  "$PYTHON" -m pip wheel -q --no-deps -w "$PAYLOAD/wheels" "${SDIST_WHEELS[@]}"
  ls -l "$PAYLOAD" "$PAYLOAD/wheels"
  echo "carry, one device call each on a warm machine (<= 64 MiB a call):"
  echo "  $PAYLOAD/wheels $PAYLOAD/cifar10_index.json $PAYLOAD/cifar10_test.u8"
  for part in "$PAYLOAD"/cifar10_train_*.u8; do echo "  $part"; done
  exit 0
fi

if [ "$MODE" = dry-run ]; then
  PLAN=(
    "pip install --no-index --no-deps --target <site> $PAYLOAD/wheels/*.whl (if hydra is missing)"
    "python bench/gpu_pack.py unpack --payload $PAYLOAD --out <work>/data"
    "python -m pytest -m gpu tests/gpu --junitxml <work>/gpu_tests.xml"
  )
  for seed in $(seq 0 $((SEEDS - 1))); do
    for compiled in false true; do
      PLAN+=("python train.py ${RUN_ARGS[*]} seed=$seed compile=$compiled paths.data_dir=<work>/data")
    done
  done
  "$PYTHON" bench/gpu_pack.py summarize --dry-run --out "$OUT" --payload "$PAYLOAD" \
    --seeds "$SEEDS" --budget-s "$BUDGET_S" --command "$COMMAND" --plan "${PLAN[@]}"
  exit 0
fi

# -- the real run, on the CUDA machine ---------------------------------------------------------
START=$(date +%s)
left() { echo $((BUDGET_S - ($(date +%s) - START))); }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cnnlab_gpu_check.XXXXXX")"
mkdir -p "$WORK/runs"
: >"$WORK/runs/runs.tsv"
step() { echo "$(($(date +%s) - START)) s: $*" | tee -a "$WORK/steps.log"; }
summarize() {
  "$PYTHON" bench/gpu_pack.py summarize --out "$OUT" --payload "$PAYLOAD" --work "$WORK" \
    --seeds "$SEEDS" --budget-s "$BUDGET_S" --command "$COMMAND"
}

"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" ||
  die "no CUDA device visible to torch (use --dry-run on a CPU machine)"
if ! "$PYTHON" -c "import hydra, omegaconf" 2>/dev/null; then
  compgen -G "$PAYLOAD/wheels/*.whl" >/dev/null || die "hydra is missing and $PAYLOAD/wheels/ has no wheels: run --pack where pip works and carry them"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" "$PAYLOAD"/wheels/*.whl
  export PYTHONPATH="$PYTHONPATH:$WORK/site"
  step "installed $(ls "$PAYLOAD/wheels" | tr '\n' ' ')"
fi
"$PYTHON" bench/gpu_pack.py unpack --payload "$PAYLOAD" --out "$WORK/data" >/dev/null
export CNNLAB_DATA_DIR="$WORK/data"
step "unpacked CIFAR-10 into $WORK/data"

# Test timeouts leave room for the airbench runs: at most a third of the budget.
set +e
tests_s=$(($(left) / 3))
[ "$tests_s" -ge 30 ] || tests_s=30
timeout "$tests_s" "$PYTHON" -m pytest -q -m gpu tests/gpu -p no:cacheprovider \
  --junitxml "$WORK/gpu_tests.xml" 2>&1 | tail -n 25
step "GPU-marked tests: exit ${PIPESTATUS[0]}"

for seed in $(seq 0 $((SEEDS - 1))); do
  for compiled in false true; do
    budget=$(($(left) - 15))
    if [ "$budget" -lt 30 ]; then
      step "out of time: compile=$compiled seed=$seed not run"
      continue
    fi
    t0=$(date +%s%N)
    timeout "$budget" "$PYTHON" train.py "${RUN_ARGS[@]}" "seed=$seed" "compile=$compiled" \
      "paths.data_dir=$WORK/data" "hydra.run.dir=$WORK/runs/compile-${compiled}_seed$seed" \
      >"$WORK/runs/compile-${compiled}_seed$seed.log" 2>&1
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    printf '%s\t%s\t%s\t%s\n' "$compiled" "$seed" "$rc" "$ms" >>"$WORK/runs/runs.tsv"
    step "airbench94 compile=$compiled seed=$seed: exit $rc in $((ms / 1000)) s"
    [ "$rc" -eq 0 ] || tail -n 15 "$WORK/runs/compile-${compiled}_seed$seed.log"
  done
done
set -e
summarize
