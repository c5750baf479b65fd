#!/usr/bin/env bash
# Negative-transfer study, end to end (README.md). Re-running skips finished runs: a completed
# run dir resumes from its final checkpoint and the NTG baselines are cached.
#   experiments/negative_transfer/run.sh            # everything (~25 min on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
OUT=$PWD/experiments/negative_transfer/runs
SEEDS=1,2,3
SIZES=1,5,10,50
PERM='[{name:permute_labels,seed:1}]'

# 1. Source models, one per seed: MNIST (related) and MNIST with permuted labels (unrelated).
$PY -m jtl.train -m experiment=nt_source seed=$SEEDS \
  hydra.sweep.dir="$OUT/source/mnist" 'hydra.sweep.subdir=seed${seed}'
$PY -m jtl.train -m experiment=nt_source "source.shifts=$PERM" seed=$SEEDS \
  hydra.sweep.dir="$OUT/source/permuted" 'hydra.sweep.subdir=seed${seed}'

# 2. Fine-tune each on K labeled USPS examples per class, all parameters (head included)
#    loaded from the same seed's source model.
$PY -m jtl.train -m experiment=nt_finetune seed=$SEEDS target.per_class=$SIZES \
  "init_from=$OUT/source/mnist/seed\${seed}" \
  hydra.sweep.dir="$OUT/finetune/mnist" 'hydra.sweep.subdir=pc${target.per_class}/seed${seed}'
$PY -m jtl.train -m experiment=nt_finetune seed=$SEEDS target.per_class=$SIZES \
  "source.shifts=$PERM" "init_from=$OUT/source/permuted/seed\${seed}" \
  hydra.sweep.dir="$OUT/finetune/permuted" 'hydra.sweep.subdir=pc${target.per_class}/seed${seed}'
# Ablation at the small sizes: re-initialise the head (load the backbone only). The fine-tune
# seed must differ from the source model's: the trainer initialises a run's fresh parameters
# from its seed, so with the same seed the "new" head is the source model's *initial* head,
# which its backbone co-adapted with (README.md). Seeds 11-13 fine-tune sources 1-3; the
# *_same_seed dirs keep the coupled variant to show the effect.
for s in 1 2 3; do
  for src in mnist permuted; do
    shifts='[]'; [ $src = permuted ] && shifts=$PERM
    $PY -m jtl.train -m experiment=nt_finetune seed=$((s + 10)) target.per_class=1,5 \
      "source.shifts=$shifts" "init_from=$OUT/source/$src/seed$s" "dont_load=head/.*" \
      hydra.sweep.dir="$OUT/finetune/${src}_new_head" \
      'hydra.sweep.subdir=pc${target.per_class}/seed${seed}'
    $PY -m jtl.train -m experiment=nt_finetune seed=$s target.per_class=1,5 \
      "source.shifts=$shifts" "init_from=$OUT/source/$src/seed$s" "dont_load=head/.*" \
      hydra.sweep.dir="$OUT/finetune/${src}_new_head_same_seed" \
      'hydra.sweep.subdir=pc${target.per_class}/seed${seed}'
  done
done

# 3. NTG: trains the target_only baselines once per (target size, seed) into runs/baselines,
#    shared by all sources, then writes the gap into each fine-tuned run's measures.json.
for src in mnist permuted {mnist,permuted}_new_head{,_same_seed}; do
  $PY -m jtl.measure run_dir="$OUT/finetune/$src" 'measure=[ntg]' \
    measure.ntg.baselines_dir="$OUT/baselines"
done

# 4. Domain discrepancy of the source models' features (MNIST test vs USPS test), and the
#    transferability estimates of the source models on USPS; then DANN's features.
$PY -m jtl.measure run_dir="$OUT/source" 'measure=[pad,leep,logme]'
$PY -m jtl.train -m experiment=nt_source method=dann seed=$SEEDS \
  hydra.sweep.dir="$OUT/dann" 'hydra.sweep.subdir=seed${seed}'
$PY -m jtl.measure run_dir="$OUT/dann" 'measure=[pad,leep,logme]'
$PY -m jtl.measure run_dir="$OUT/source/mnist/seed1" 'measure=[tsne]' measure.tsne.max_points=1000
$PY -m jtl.measure run_dir="$OUT/dann/seed1" 'measure=[tsne]' measure.tsne.max_points=1000

# 5. Tables (results.md, results_*.csv, ntg.png); jtl.report over everything cross-checks the
#    NTG (its head/.* rows pool both head-seed variants: seed is never a grouping key).
$PY experiments/negative_transfer/tables.py "$OUT"
$PY -m jtl.report "$OUT" --ntg --metric target/test/accuracy
