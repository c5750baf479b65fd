#!/bin/bash
# Office-31 targets at k = 1, 3, all labeled examples per class from the ImageNet
# EfficientNet-Lite0: RECIPES (default on the CPU: linear_probe, the fixed feature extractor,
# on cached features) x the three domains, seeds 0-2 vmapped. The fine-tuning recipes
# (freeze_k, finetune, lp_ft, target_only from scratch) run a 224 x 224 EfficientNet per step:
# gpu.sh runs them (RECIPES="linear_probe freeze_k finetune lp_ft target_only").
# Resumable. Usage: run_ft.sh [runs dir]
set -ef  # -f: no globbing of the overrides in SIZE / EXTRA
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/office31/runs/ft}
PY=${PY:-.venv/bin/python}
# The CPU protocol's resolution: 128 x 128 crops of 146 x 146 (TLlib's 224 of 256, scaled:
# a 224 backbone pass per image is 3x the CPU time this shared machine had). gpu.sh: SIZE="".
SIZE=${SIZE-"model.input_shape=[128,128,3] pp.resize=146"}
STEPS=${STEPS:-1000}
RECIPES=${RECIPES:-linear_probe}
TARGETS=${TARGETS:-"amazon dslr webcam"}
for target in $TARGETS; do
  for k in 1 3 all; do
    per_class=$k; [ "$k" = all ] && per_class=null
    for recipe in $RECIPES; do
      case $recipe in
        linear_probe) extra=(transfer=linear_probe) ;;
        # the first half of Lite0's 18 blocks frozen (a priori), the rest at TLlib's 0.1x
        freeze_k) extra=(transfer=freeze_k transfer.freeze_k=9
                         '+transfer.groups=[{params: "backbone/.*", lr_mult: 0.1}]') ;;
        finetune) extra=(transfer=finetune
                         '+transfer.groups=[{params: "backbone/.*", lr_mult: 0.1}]') ;;
        lp_ft) extra=(transfer=lp_ft) ;;
        target_only) extra=(transfer=none model.weights=null) ;;
      esac
      $PY -m jtl.train experiment=office31_ft domain@target=office31_$target \
          target.per_class=$per_class "${extra[@]}" $SIZE trainer.steps=$STEPS \
          'trainer.seeds=[0,1,2]' trainer.tensorboard=false \
          hydra.run.dir=$OUT/$target/k$k/$recipe
    done
  done
done
RES=${RES:-experiments/office31/results/ft}
(cd "$OUT" && find . -path '*/seed*/summary.json' -o -path '*/seed*/.hydra/config.yaml') |
  while read -r f; do mkdir -p "$RES/$(dirname "$f")" && cp "$OUT/$f" "$RES/$f"; done
$PY experiments/office31/summarize.py ft "$OUT" | tee "$RES/table.md"
