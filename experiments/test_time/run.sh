#!/bin/bash
# Source-free adaptation, offline (issue 25): the digits recipe's source model, then each
# source-free method from it on unlabeled target train, scored on target test; seeds 0 1 2,
# MNIST -> USPS and USPS -> MNIST. Resumable: a completed run dir is not retrained.
# Usage: experiments/test_time/run.sh [runs dir]   (DIRS="m2u" for one direction)
# Hyper-parameters are the papers' / reference code's, fixed before any run (README.md).
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/test_time/runs}
PY=${PY:-.venv/bin/python}
QUIET="trainer.progress=false trainer.tensorboard=false"
for seed in 0 1 2; do
  for dir in ${DIRS:-m2u u2m}; do
    # SHOT relabels once an epoch: USPS train (6,562) is ~100 steps of 64; 1500 steps are
    # under 2 epochs of MNIST train (54,000), relabelled every 500 (the marks of the budget).
    interval=$([ "$dir" = m2u ] && echo 100 || echo 500)
    src=$OUT/$dir/source_only/seed$seed
    $PY -m jtl.train experiment=digits_$dir seed=$seed $QUIET hydra.run.dir=$src
    run() {  # run <method> [overrides...]: source-free, from this seed's source model
      local m=$1; shift
      $PY -m jtl.train experiment=digits_$dir seed=$seed source=null init_from=$src \
          method=$m "$@" $QUIET hydra.run.dir=$OUT/$dir/$m/seed$seed
    }
    run adabn
    run bn_adapt
    run t3a
    run tent optim=adam optim.lr=1e-3 trainer.batch_size=128 trainer.steps=500
    run shot trainer.batch_size=64 trainer.steps=1500 method.interval=$interval
    # SHOT's source recipe (label smoothing 0.1, else the same run), and SHOT from it.
    ls=$OUT/$dir/source_ls/seed$seed
    $PY -m jtl.train experiment=digits_$dir seed=$seed method.label_smoothing=0.1 $QUIET \
        hydra.run.dir=$ls
    $PY -m jtl.train experiment=digits_$dir seed=$seed source=null init_from=$ls method=shot \
        trainer.batch_size=64 trainer.steps=1500 method.interval=$interval $QUIET \
        hydra.run.dir=$OUT/$dir/shot_ls/seed$seed
  done
done
$PY experiments/test_time/summarize.py "$OUT"
