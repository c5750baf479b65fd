#!/bin/bash
# AdaBN study (issue 20): the digits recipe's source model (LeNet-BN, TLlib's recipe), then
# AdaBN from it, source-free, on MNIST -> USPS and MNIST -> sklearn digits; seeds 0 1 2.
# Resumable: a completed run dir is not retrained. Usage: experiments/adabn/run.sh [runs dir]
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/adabn/runs}
PY=${PY:-.venv/bin/python}
for seed in 0 1 2; do
  for target in usps sklearn_digits; do
    src=$OUT/$target/source_only/seed$seed
    $PY -m jtl.train experiment=digits_m2u domain@target=$target seed=$seed \
        trainer.progress=false hydra.run.dir=$src
    $PY -m jtl.train experiment=digits_m2u domain@target=$target seed=$seed method=adabn \
        source=null init_from=$src trainer.progress=false hydra.run.dir=$OUT/$target/adabn/seed$seed
  done
done
$PY experiments/adabn/summarize.py "$OUT"
