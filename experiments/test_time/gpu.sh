#!/bin/bash
# SHOT's own digits protocol (tim-learn/SHOT digit/uda_digit.py), for a GPU: the source model
# trained with label smoothing 0.1 for 30 epochs of batch 64 (SGD 0.01, momentum 0.9,
# Nesterov, weight decay 1e-3, lr (1 + 10 p)^-0.75: the digits recipe's optim=sgd_digits),
# then SHOT for 30 epochs of batch 64 on target train, pseudo-labels once per epoch
# (beta 0.3), and TENT (10 passes of batch 128, as run.sh) and the statistics methods from the
# same source model; seeds 0 1 2, both directions. Resumable. Not run on the 2-core CPU (a source run alone is 25,320 steps);
# written, not yet measured (no device in this session).
# Usage: experiments/test_time/gpu.sh [runs dir]; then summarize.py on that dir.
# Left as SHOT differs: its classifier is weight-normalised (jtl's head is plain linear),
# dropout after the bottleneck BN, USPS source augmentation (crop with 4-pixel padding,
# rotation 10 degrees: no such jtl augment), best-source-test checkpoint selection (jtl
# keeps the final step), the whole target train split (jtl holds out val_fraction = 10%).
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/test_time/runs_gpu}
source experiments/test_time/common.sh
epoch() { [ "$1" = mnist ] && echo 844 || echo 103; }  # ceil(train split / 64): 54,000 / 6,562
for seed in 0 1 2; do
  for dir in m2u u2m; do
    if [ "$dir" = m2u ]; then se=$(epoch mnist); te=$(epoch usps)
    else se=$(epoch usps); te=$(epoch mnist); fi
    src=$OUT/$dir/source_only/seed$seed
    train "$src" method.label_smoothing=0.1 trainer.batch_size=64 trainer.steps=$((30 * se)) \
        trainer.eval_every=$se trainer.log_every=$se trainer.checkpoint_every=$((10 * se))
    statistics "$src"
    adapt "$src" tent tent optim=adam optim.lr=1e-3 trainer.batch_size=128 \
        trainer.steps=$((10 * (te + 1) / 2))
    adapt "$src" shot shot trainer.batch_size=64 trainer.steps=$((30 * te)) method.interval=$te \
        trainer.eval_every=$te trainer.log_every=$te trainer.checkpoint_every=$((10 * te))
  done
done
$PY experiments/test_time/summarize.py "$OUT"

# MNIST-C's full protocol (mnistc.sh, README): every corruption and method, the offline methods
# on the whole corrupted train split (54,000; the CPU run keeps 4,500), SHOT for 30 epochs of
# batch 64 relabelled once an epoch (844 steps; the CPU run: 3 epochs of its 4,500), the
# source models trained under $OUT/mnistc/pretrain by pretrain=digits_m2u. Not yet run.
TARGET_TRAIN=target.per_class=null SHOT_STEPS=$((30 * 844)) SHOT_INTERVAL=844 \
    experiments/test_time/mnistc.sh "$OUT/mnistc"
