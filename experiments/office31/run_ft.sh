#!/bin/bash
# Office-31 targets at k = 1, 3, all labeled examples per class from the ImageNet
# EfficientNet-Lite0 (sweep.py ft): RECIPES (default on the CPU: linear_probe, the fixed
# feature extractor, on cached features) x the three domains, seeds 0-2 vmapped. The
# fine-tuning recipes (freeze_k, finetune, lp_ft, target_only from scratch) run the
# EfficientNet per step: gpu.sh runs them (the CPU's reduced slice: see the README's
# commands). TARGETS / KS restrict the grid (comma-separated). Resumable.
# Usage: run_ft.sh [runs dir]
set -ef  # -f: no globbing of the overrides in SIZE
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/office31/runs/ft}
PY=${PY:-.venv/bin/python}
SIZE=${SIZE-"model.input_shape=[128,128,3] pp.resize=146"}  # as run_da.sh; gpu.sh: SIZE=""
STEPS=${STEPS:-1000}
RECIPES=${RECIPES:-linear_probe}
SUBSET=()
[ -n "${TARGETS:-}" ] && SUBSET+=(--targets "$TARGETS")
[ -n "${KS:-}" ] && SUBSET+=(--ks "$KS")
$PY experiments/office31/sweep.py ft --out "$OUT" --recipes "${RECIPES// /,}" "${SUBSET[@]}" \
    $SIZE trainer.steps=$STEPS ${EVAL:+trainer.eval_every=$EVAL}
RES=${RES:-experiments/office31/results/ft}
(cd "$OUT" && find . -path '*/seed*/summary.json' -o -path '*/seed*/.hydra/config.yaml') |
  while read -r f; do mkdir -p "$RES/$(dirname "$f")" && cp "$OUT/$f" "$RES/$f"; done
$PY experiments/office31/summarize.py ft "$OUT" | tee "$RES/table.md"
