#!/bin/bash
# DomainBed's RotatedMNIST (0, 15, 30, 45, 60, 75 degrees), leave-one-domain-out: each
# environment in turn is the unseen target (its labels never read in training), the other five
# the sources, ERM (source_only) by default, DomainBed's MNIST_CNN, Adam 1e-3, seeds 0-2 vmapped
# into one program per (method, test environment). Resumable: a completed run is not retrained.
# The CPU protocol (below) is a shortened DomainBed run; gpu.sh runs the full one (5001 steps,
# batch 64 per environment, evaluation every 100, DomainBed's 20% held out per environment).
# Usage: experiments/domainbed/run_rotated.sh [runs dir] [method ...]   (ENVS="0 3": a subset)
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/domainbed/runs_rotated}
shift || true
PY=${PY:-.venv/bin/python}
STEPS=${STEPS:-200}     # DomainBed: 5001
BATCH=${BATCH:-8}       # per environment (5 a step: 40 images); DomainBed: 64
EVAL=${EVAL:-100}       # DomainBed's checkpoint_freq for its MNIST data sets: 100
# As run.sh: smaller held-out splits than DomainBed's 20% so that evaluation fits the CPU:
# each source's val 3% of its train part (~340) and test 2% (~230), the target's test 6% (~700).
SPLITS=${SPLITS:-"val_fraction: 0.03, test_fraction: 0.02"}
TARGET_SPLITS=${TARGET_SPLITS:-"target.val_fraction=0 target.test_fraction=0.06"}
ENVS=${ENVS:-0 1 2 3 4 5}
METHODS=${*:-source_only}
for method in $METHODS; do
  for t in $ENVS; do
    srcs=""
    for e in 0 1 2 3 4 5; do
      [ "$e" = "$t" ] && continue
      srcs="$srcs${srcs:+, }{name: rotated_mnist, env: $e${SPLITS:+, $SPLITS}}"
    done
    $PY -m jtl.train method=$method "sources=[$srcs]" domain@target=rotated_mnist \
        target.env=$t $TARGET_SPLITS model=${MODEL:-mnist_cnn} optim=adam \
        trainer.steps=$STEPS trainer.batch_size=$BATCH trainer.eval_every=$EVAL \
        trainer.log_every=$EVAL trainer.checkpoint_every=$STEPS 'trainer.seeds=[0,1,2]' \
        trainer.progress=false trainer.tensorboard=false hydra.run.dir=$OUT/$method/env$t
  done
done
RES=${RES:-experiments/domainbed/results/cpu_rotated}
(cd "$OUT" && find . -path '*/seed*/summary.json' -o -path '*/seed*/.hydra/config.yaml') |
  while read -r f; do mkdir -p "$RES/$(dirname "$f")" && cp "$OUT/$f" "$RES/$f"; done
$PY experiments/domainbed/summarize_rotated.py "$OUT" | tee "$RES/table.md"
