#!/bin/bash
# DomainBed's full ColoredMNIST protocol for the same five methods, unchanged from DomainBed's
# defaults (hparams_registry.py, scripts/train.py): 5001 steps, batch 64 per environment, Adam
# lr 1e-3, irm/vrex anneal 500, evaluation every 100 steps (CHECKPOINT_FREQ), 3 seeds
# vmapped. Then DomainBed's search (SEARCH=0 skips it): 20 hyper-parameter samples x 3 trials
# per method, each method's 60 lanes one vmapped program (trainer.search), the batch size held
# at 64 (DomainBed samples it, 2^U(3,9): jtl would compile one program per batch size), target
# val 10% for DomainBed's oracle. For a machine with an accelerator; resumable like run.sh.
# Usage: experiments/domainbed/gpu.sh [runs dir] [method ...]
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/domainbed/runs_full}
shift || true
FULL=(STEPS=5001 BATCH=64 EVAL=100 ANNEAL=500 "SPLITS=val_fraction: 0.1, test_fraction: 0.2")
env RES=experiments/domainbed/results/full "${FULL[@]}" \
  TARGET_SPLITS="target.val_fraction=0.1 target.test_fraction=0.2" \
  experiments/domainbed/run.sh "$OUT" "$@"
[ "${SEARCH:-1}" = 0 ] && exit 0
env RES=experiments/domainbed/results/full_search "${FULL[@]}" SAMPLES=${SAMPLES:-20} \
  TARGET_SPLITS="target.val_fraction=0.1 target.test_fraction=0.2" \
  experiments/domainbed/run.sh "${OUT}_search" "$@"
