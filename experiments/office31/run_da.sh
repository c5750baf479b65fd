#!/bin/bash
# Office-31 unsupervised DA on the frozen ImageNet EfficientNet-Lite0 (cached features):
# six tasks x source_only, dann, cdan, mcc, mdd, mmd, seeds 0-2 vmapped into one program per
# (task, method), all in one process (sweep.py). TLlib's heads and hyper-parameters
# (examples/domain_adaptation/image_classification/*.py defaults and *.sh): bottleneck 256,
# SGD 0.9 Nesterov, lr 0.01, weight decay 1e-3, batch 32 per domain, trade-off 1; MCC
# (mcc.sh): bottleneck 1024, lr 0.005, temperature 2.5; MDD (mdd.sh, mdd.py): bottleneck 1024,
# lr 0.004, weight decay 5e-4, margin 4. The CPU protocol: STEPS iterations instead of
# TLlib's 20 x 1000, at SIZE. Resumable: completed runs are not retrained.
# Usage: run_da.sh [runs dir] [method ...]
set -ef  # -f: no globbing of the overrides in SIZE / EXTRA
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/office31/runs/da}
shift || true
PY=${PY:-.venv/bin/python}
# The CPU protocol's resolution: 128 x 128 crops of 146 x 146 (TLlib's 224 of 256, scaled:
# a 224 backbone pass per image is 3x the CPU time this shared machine had). gpu.sh: SIZE="".
SIZE=${SIZE-"model.input_shape=[128,128,3] pp.resize=146"}
STEPS=${STEPS:-500}    # TLlib: 20 epochs x 1000 iterations (a CPU budget: see README)
STEPS_MCC=${STEPS_MCC:-$STEPS}  # TLlib's mcc.sh: 20 x 500
EVAL=${EVAL:-100}
EXTRA=${EXTRA:-}       # more overrides for every run (gpu.sh's fine-tuning), split on spaces
METHODS=${*:-source_only dann cdan mcc mdd mmd}
$PY experiments/office31/sweep.py da --out "$OUT" --methods "${METHODS// /,}" --steps-mcc "$STEPS_MCC" \
    $SIZE $EXTRA trainer.steps=$STEPS trainer.eval_every=$EVAL trainer.log_every=$EVAL \
    trainer.checkpoint_every=$STEPS
RES=${RES:-experiments/office31/results/da}
(cd "$OUT" && find . -path '*/seed*/summary.json' -o -path '*/seed*/.hydra/config.yaml') |
  while read -r f; do mkdir -p "$RES/$(dirname "$f")" && cp "$OUT/$f" "$RES/$f"; done
$PY experiments/office31/summarize.py da "$OUT" --plot "$RES/averages.png" | tee "$RES/table.md"
