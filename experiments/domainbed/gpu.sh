#!/bin/bash
# DomainBed's full ColoredMNIST protocol for the same five methods, unchanged from DomainBed's
# defaults (hparams_registry.py, scripts/train.py): 5001 steps, batch 64 per environment, Adam
# lr 1e-3, irm/vrex anneal 500, evaluation every 100 steps (CHECKPOINT_FREQ), 3 seeds
# vmapped. For a machine with an accelerator; resumable like run.sh.
# Usage: experiments/domainbed/gpu.sh [runs dir] [method ...]
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/domainbed/runs_full}
shift || true
RES=experiments/domainbed/results/full STEPS=5001 BATCH=64 EVAL=100 ANNEAL=500 \
  SPLITS="val_fraction: 0.1, test_fraction: 0.2" \
  TARGET_SPLITS="target.val_fraction=0.1 target.test_fraction=0.2" exec experiments/domainbed/run.sh "$OUT" "$@"
