#!/usr/bin/env bash
# Does a longer budget close DANN's gap on MNIST -> USPS? The recipe unchanged but 3x the
# steps (6000), source_only and dann, 3 seeds, in their own sweep dir (table.py refuses to
# mix budgets). Resumable like run.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-experiments/digits_da/runs_6000}
SEEDS=${SEEDS:-0,1,2}
METHODS=${METHODS:-source_only,dann}
$PY -m jtl.train -m experiment=digits_m2u method=$METHODS seed=$SEEDS trainer.steps=6000 \
  trainer.progress=false hydra.sweep.dir=$OUT/m2u 'hydra.sweep.subdir=${method.name}/seed${seed}'
