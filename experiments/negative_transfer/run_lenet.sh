#!/usr/bin/env bash
# Follow-up with LeNet (README.md, "LeNet check"): the MNIST -> USPS rows that the MLP left
# inconclusive (target sizes 1 and 5), and DANN vs source_only PAD on the classic backbone.
# ~30 min on 2 CPU cores. Baselines go to the same cache as run.sh (their key holds the model).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
OUT=$PWD/experiments/negative_transfer/runs
L="$OUT/lenet"
SEEDS=1,2,3

$PY -m jtl.train -m experiment=nt_source model=lenet seed=$SEEDS \
  hydra.sweep.dir="$L/source/mnist" 'hydra.sweep.subdir=seed${seed}'
$PY -m jtl.train -m experiment=nt_finetune model=lenet seed=$SEEDS target.per_class=1,5 \
  "init_from=$L/source/mnist/seed\${seed}" \
  hydra.sweep.dir="$L/finetune/mnist" 'hydra.sweep.subdir=pc${target.per_class}/seed${seed}'
$PY -m jtl.measure run_dir="$L/finetune/mnist" 'measure=[ntg]' \
  measure.ntg.baselines_dir="$OUT/baselines"
$PY -m jtl.train -m experiment=nt_source model=lenet method=dann seed=$SEEDS \
  hydra.sweep.dir="$L/dann" 'hydra.sweep.subdir=seed${seed}'
$PY -m jtl.measure run_dir="$L/source" 'measure=[pad,leep,logme]'
$PY -m jtl.measure run_dir="$L/dann" 'measure=[pad,leep,logme]'
$PY -m jtl.measure run_dir="$L/dann/seed1" 'measure=[tsne]' measure.tsne.max_points=1000
cp "$L/dann/seed1/tsne.png" experiments/negative_transfer/tsne_lenet_dann.png
$PY experiments/negative_transfer/tables.py "$OUT"
