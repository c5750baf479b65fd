#!/usr/bin/env bash
# The digits table at TLlib's LeNet budget (50,000 iterations of batch 128 per domain) on one
# GPU: the recipe of experiment=digits_{m2u,u2m} unchanged except the budget and the
# intervals that scale with it (evaluate and checkpoint every 5000 steps, log every 1000).
# Fixed before any result of it was seen; a sweep dir of its own (table.py never mixes
# budgets). Runs go in waves of PARALLEL processes sharing the GPU, most important first
# (MNIST -> USPS, where the 2000-step DANN gain missed the goal), under a DEADLINE in seconds:
# a run it cuts is unfinished and table.py lists it, never reports it.
#   bash experiments/digits_da/gpu.sh                      # RUNS=experiments/digits_da/runs_gpu50k
#   STEPS=50000 PARALLEL=9 DEADLINE=420 METHODS="source_only dann cdan" bash .../gpu.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
RUNS=${RUNS:-experiments/digits_da/runs_gpu50k}
STEPS=${STEPS:-50000}
BATCH=${BATCH:-128}
EVERY=${EVERY:-5000}
PARALLEL=${PARALLEL:-9}
DEADLINE=${DEADLINE:-3600}
SEEDS=${SEEDS:-0 1 2}
METHODS=${METHODS:-source_only dann cdan}
DIRECTIONS=${DIRECTIONS:-m2u u2m}
EXTRA=${EXTRA:-}  # e.g. paths.data_dir=... on a machine without ../shared/data

# Prepare MNIST and USPS once, before parallel runs would race to prepare them.
$PY -m jtl.train experiment=digits_m2u trainer=debug trainer.progress=false $EXTRA \
  hydra.run.dir="$(mktemp -d)/prepare" >/dev/null || exit 1

jobs=()
for d in $DIRECTIONS; do for m in $METHODS; do for s in $SEEDS; do
  jobs+=("$d $m $s")
done; done; done
printf '%s\n' "${jobs[@]}" | timeout "$DEADLINE" xargs -P "$PARALLEL" -L 1 bash -c '
  d=$0 m=$1 s=$2
  dir='"$RUNS"'/$d/$m/seed$s
  mkdir -p "$dir"
  '"$PY"' -m jtl.train experiment=digits_$d method=$m seed=$s trainer.steps='"$STEPS"' \
    trainer.batch_size='"$BATCH"' trainer.eval_every='"$EVERY"' \
    trainer.checkpoint_every='"$EVERY"' trainer.log_every=1000 trainer.progress=false \
    '"$EXTRA"' hydra.run.dir="$dir" > "$dir/train.out" 2>&1
  echo "$(date +%T) $d $m seed$s exit $?"'
echo "study exit $? at $(date +%T)"
pkill -TERM -f "jtl.train experiment=digits_" && sleep 3  # runs the deadline cut: unfinished
$PY experiments/digits_da/table.py "$RUNS"
