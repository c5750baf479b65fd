#!/bin/bash
# Source-free adaptation, offline (issue 25): the digits recipe's source model, then each
# source-free method from it on unlabeled target train, scored on target test; seeds 0 1 2,
# MNIST -> USPS and USPS -> MNIST. Resumable: a completed run dir is not retrained.
# Usage: experiments/test_time/run.sh [runs dir]   (DIRS="m2u" for one direction)
# Hyper-parameters are the papers' / reference code's, fixed before any run (README.md).
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/test_time/runs}
source experiments/test_time/common.sh
for seed in 0 1 2; do
  for dir in ${DIRS:-m2u u2m}; do
    # SHOT relabels once an epoch: USPS train (6,562) is ~100 steps of 64; 1500 steps are
    # under 2 epochs of MNIST train (54,000), relabelled every 500 (the marks of the budget).
    interval=$([ "$dir" = m2u ] && echo 100 || echo 500)
    shot="trainer.batch_size=64 trainer.steps=1500 method.interval=$interval"
    src=$OUT/$dir/source_only/seed$seed
    train "$src"
    statistics "$src"
    adapt "$src" tent tent optim=adam optim.lr=1e-3 trainer.batch_size=128 trainer.steps=500
    adapt "$src" shot shot $shot
    # SHOT's source recipe (label smoothing 0.1, else the same run), and SHOT from it.
    ls=$OUT/$dir/source_ls/seed$seed
    train "$ls" method.label_smoothing=0.1
    adapt "$ls" shot_ls shot $shot
  done
done
$PY experiments/test_time/summarize.py "$OUT"
