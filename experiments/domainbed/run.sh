#!/bin/bash
# DomainBed's ColoredMNIST with +90% and +80% as the training environments (sources) and -90%
# as the unseen test environment (target, its labels never read in training): ERM
# (source_only), irm, vrex, group_dro, mixup, DomainBed's default hyper-parameters, seeds 0-2
# vmapped into one program per method. Resumable: completed seeds are not retrained.
# The CPU protocol (the defaults below) is a shortened run of DomainBed's; gpu.sh runs the full
# one (5001 steps, batch 64 per environment, anneal 500, evaluation every 100 steps).
# SAMPLES=n: DomainBed's random search instead of the defaults (trainer.search, jtl/train/search.py):
# n hyper-parameter samples x the 3 trials per method, every lane of a method in one vmapped
# program (<runs>/<method>/sample<k>/seed<s>), the anneal sampled (not ANNEAL), the table chosen
# per trial by each rule (summarize_search.py); default runs dir runs_search, RES cpu_search.
# Usage: experiments/domainbed/run.sh [runs dir] [method ...]
set -e
cd "$(dirname "$0")/../.."
SAMPLES=${SAMPLES:-}
OUT=${1:-experiments/domainbed/runs${SAMPLES:+_search}}
shift || true
PY=${PY:-.venv/bin/python}
STEPS=${STEPS:-100}     # DomainBed: 5001
BATCH=${BATCH:-8}       # per environment (within DomainBed's search range 2^U(3,9)); default 64
MODEL=${MODEL:-mnist_cnn}  # arm_mnist_cnn: DomainBed's ARM (run it with method source_only)
EVAL=${EVAL:-50}        # DomainBed's checkpoint_freq for its MNIST data sets: 100
ANNEAL=${ANNEAL:-10}    # irm/vrex penalty anneal; DomainBed: 500 of 5001 steps (the same 10%)
# Evaluation dominates a CPU run (a forward pass over every scored split, 3 seeds, at every
# evaluation), so the CPU protocol scores smaller held-out splits than DomainBed's 20%: each
# source's val 3% of its train part (~690) and test 2% (~470), the target's test 6% (~1,400)
# and no target val. gpu.sh keeps jtl's defaults (test 20%, val 10% of the rest).
SPLITS=${SPLITS:-"val_fraction: 0.03, test_fraction: 0.02"}
TARGET_SPLITS=${TARGET_SPLITS:-"target.val_fraction=0${SAMPLES:+.03} target.test_fraction=0.06"}
# A search: DomainBed's oracle chooses a sample by the target's val split (3% here), and a
# sampled lambda up to 1e5 is not stopped by jtl's loss guard (DomainBed has none).
SEARCH=()
[ -n "$SAMPLES" ] && SEARCH=("trainer.search={samples: $SAMPLES}" trainer.max_loss=null)
METHODS=${*:-source_only irm vrex group_dro mixup}
for method in $METHODS; do
  extra=()
  [ -z "$SAMPLES" ] && case $method in irm|vrex) extra=(method.anneal_steps=$ANNEAL) ;; esac
  $PY -m jtl.train method=$method "${extra[@]}" "${SEARCH[@]}" \
      "sources=[{name: colored_mnist, env: '+90%'${SPLITS:+, $SPLITS}}, {name: colored_mnist, env: '+80%'${SPLITS:+, $SPLITS}}]" \
      domain@target=colored_mnist target.env=-90% $TARGET_SPLITS model=$MODEL optim=adam \
      trainer.steps=$STEPS trainer.batch_size=$BATCH trainer.eval_every=$EVAL \
      trainer.log_every=$EVAL trainer.checkpoint_every=$STEPS 'trainer.seeds=[0,1,2]' \
      trainer.progress=false trainer.tensorboard=false hydra.run.dir=$OUT/$method
done
# The record: each run's summary and config (small; metrics and checkpoints stay in $OUT) and
# the table.
RES=${RES:-experiments/domainbed/results/cpu${SAMPLES:+_search}}
# (a search's table reads the lanes' evaluation records: metrics.jsonl, a few rows each, too)
(cd "$OUT" && find . -path '*/seed*/summary.json' -o -path '*/seed*/.hydra/config.yaml' \
   ${SAMPLES:+-o -path '*/seed*/metrics.jsonl'}) |
  while read -r f; do mkdir -p "$RES/$(dirname "$f")" && cp "$OUT/$f" "$RES/$f"; done
$PY experiments/domainbed/summarize${SAMPLES:+_search}.py "$OUT" | tee "$RES/table.md"
