#!/bin/bash
# Office-31 unsupervised DA on the frozen ImageNet EfficientNet-Lite0 (cached features):
# six tasks x source_only, dann, cdan, mcc, mdd, mmd, seeds 0-2 vmapped into one program per
# (task, method). TLlib's heads and hyper-parameters (examples/domain_adaptation/
# image_classification/*.py defaults and *.sh): bottleneck 256, SGD 0.9 Nesterov, lr 0.01,
# weight decay 1e-3, batch 32 per domain, trade-off 1; MCC (mcc.sh): bottleneck 1024, lr
# 0.005, temperature 2.5; MDD (mdd.sh / mdd.py): bottleneck 1024, lr 0.004, weight decay 5e-4,
# margin 4. The CPU protocol shortens TLlib's 20 x 1000 iterations to STEPS.
# Resumable: completed seeds are not retrained. Usage: run_da.sh [runs dir] [method ...]
set -ef  # -f: no globbing of the regexes in EXTRA
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/office31/runs/da}
shift || true
PY=${PY:-.venv/bin/python}
# The CPU protocol's resolution: 128 x 128 crops of 146 x 146 (TLlib's 224 of 256, scaled:
# a 224 backbone pass per image is 3x the CPU time this shared machine had). gpu.sh: SIZE="".
SIZE=${SIZE-"model.input_shape=[128,128,3] pp.resize=146"}
STEPS=${STEPS:-2000}   # TLlib: 20 epochs x 1000 iterations (MCC 20 x 500)
STEPS_MCC=${STEPS_MCC:-$STEPS}  # TLlib's mcc.sh: 20 x 500
EVAL=${EVAL:-250}
# More overrides for every run, e.g. gpu.sh's fine-tuning (words split on spaces).
EXTRA=${EXTRA:-}
TASKS=${TASKS:-"amazon:webcam dslr:webcam webcam:dslr amazon:dslr dslr:amazon webcam:amazon"}
METHODS=${*:-source_only dann cdan mcc mdd mmd}
for task in $TASKS; do
  s=${task%%:*}; t=${task##*:}
  for method in $METHODS; do
    extra=()
    steps=$STEPS
    case $method in
      mcc) extra=(neck.bottleneck_dim=1024 optim.lr=0.005); steps=$STEPS_MCC ;;
      mdd) extra=(neck.bottleneck_dim=1024 optim.lr=0.004 optim.weight_decay=5e-4) ;;
    esac
    $PY -m jtl.train experiment=office31_da domain@source=office31_$s domain@target=office31_$t \
        method=$method "${extra[@]}" $SIZE $EXTRA trainer.steps=$steps trainer.eval_every=$EVAL \
        trainer.log_every=$EVAL trainer.checkpoint_every=$steps 'trainer.seeds=[0,1,2]' \
        trainer.tensorboard=false hydra.run.dir=$OUT/${s:0:1}2${t:0:1}/$method
  done
done
RES=${RES:-experiments/office31/results/da}
(cd "$OUT" && find . -path '*/seed*/summary.json' -o -path '*/seed*/.hydra/config.yaml') |
  while read -r f; do mkdir -p "$RES/$(dirname "$f")" && cp "$OUT/$f" "$RES/$f"; done
$PY experiments/office31/summarize.py da "$OUT" | tee "$RES/table.md"
