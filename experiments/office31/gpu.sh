#!/bin/bash
# The full protocols, for a machine with an accelerator (not run here: no device was lent).
# 1. Unsupervised DA, TLlib's fine-tuning protocol unchanged: the backbone fine-tuned at 0.1x
#    the lr of bottleneck and heads, SGD 0.9 Nesterov, (1 + 10p)^-0.75, batch 32 per domain,
#    train augmentation resize 256 + random resized crop 224 + flip (pp=tllib_imagenet),
#    20 x 1000 iterations (MCC 20 x 500), evaluation every 1000; six tasks x six methods x 3
#    seeds. The backbone trains, so no feature cache.
#    At TLlib's resolution (SIZE=: 224 crops of 256; the CPU protocol runs 128 of 146).
# 2. Fixed feature extractor vs fine-tuning at k = 1, 3, all: every recipe.
# Usage: experiments/office31/gpu.sh
set -e
cd "$(dirname "$0")/../.."
SIZE= STEPS=20000 STEPS_MCC=10000 EVAL=1000 \
  EXTRA="transfer=finetune +transfer.groups=[{params:backbone/.*,lr_mult:0.1}]" \
  RES=experiments/office31/results/da_finetune \
  experiments/office31/run_da.sh experiments/office31/runs/da_finetune
SIZE= RECIPES="linear_probe freeze_k finetune lp_ft target_only" \
  RES=experiments/office31/results/ft_gpu \
  experiments/office31/run_ft.sh experiments/office31/runs/ft_gpu
