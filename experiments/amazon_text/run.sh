#!/bin/bash
# Amazon reviews books -> kitchen (issue 20's feature-vector user): source_only and DANN on
# DANN's 5000-d count vectors with the default MLP, seeds 0 1 2 vmapped into one program.
# Resumable: completed seeds are not retrained. Usage: experiments/amazon_text/run.sh [runs dir] [seeds, e.g. 0,1,2,3,4,5,6,7,8,9]
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/amazon_text/runs}
SEEDS=${2:-0,1,2}
PY=${PY:-.venv/bin/python}
for method in source_only dann; do
  $PY -m jtl.train experiment=amazon_b2k method=$method "trainer.seeds=[$SEEDS]" \
      trainer.progress=false hydra.run.dir=$OUT/$method
done
$PY -m jtl.report "$OUT" --ntg --metric target/test/accuracy selected/val/target/test/accuracy
