#!/bin/bash
# MNIST-C (issue 25): the digits recipe's MNIST source model (seeds 0 1 2, trained once via
# pretrain=digits_m2u, found or trained under $OUT/pretrain), then each source-free method on
# each of MNIST-C's 15 corruptions of MNIST (jtl/domains/corruptions.py, MNIST-C's severities):
#   online (TENT's protocol, online=stream: one pass over the corrupted test split in a fixed
#     order, batches of 128, each batch scored before its update): tent, bn_adapt;
#   offline (unlabeled corrupted target train, then scored on the corrupted test split):
#     adabn, t3a, shot;
#   source_only: the source model itself scored on the corrupted test split (mnistc_source.py).
# The 3 seeds of each cell train as vmapped lanes (trainer.seeds). Resumable: completed lanes
# are not retrained. Usage: experiments/test_time/mnistc.sh [runs dir]
#   CORRUPTIONS="fog zigzag" / METHODS="tent bn_adapt" for a subset; TARGET_TRAIN (default
#   target.per_class=500), SHOT_STEPS (210), SHOT_INTERVAL (70) for other budgets (gpu.sh).
# Hyper-parameters: the papers' / reference code's, fixed before any run (README.md); the CPU
# budget's cuts (target train 4,500 images, SHOT 3 epochs) are stated there; gpu.sh has more.
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/test_time/runs_mnistc}
PY=${PY:-.venv/bin/python}
ALL="shot_noise impulse_noise glass_blur motion_blur shear scale rotate brightness translate
stripe spatter dotted_line zigzag canny_edges fog"
# Target: MNIST with one corruption; per_class=500 keeps 5,000 train images (4,500 train after
# the 10% validation hold-out) for the offline methods: the corruptions run before any subset,
# so this is what bounds each run's corruption cost on a CPU. The test split is all 10,000.
# shellcheck disable=SC2206
COMMON=(experiment=digits_m2u domain@target=mnist "${TARGET_TRAIN:-target.per_class=500}" source=null
        pretrain=digits_m2u "paths.pretrain_dir=${PRETRAIN_DIR:-$OUT/pretrain}"
        "trainer.seeds=[0,1,2]" trainer.progress=false trainer.tensorboard=false)
STREAM=(online=stream online.order=0 trainer.batch_size=128 trainer.log_every=4)
cell() {  # cell <corruption> <method> [overrides...]: 3 seeds into $OUT/<corruption>/<method>
  local c=$1 m=$2; shift 2
  $PY -m jtl.train "${COMMON[@]}" "target.shifts=[{name: $c}]" method="$m" "$@" \
      hydra.run.dir="$OUT/$c/$m"
}
for c in ${CORRUPTIONS:-$ALL}; do
  for m in ${METHODS:-bn_adapt tent adabn t3a shot}; do
    case $m in
      bn_adapt) cell "$c" bn_adapt "${STREAM[@]}" ;;
      # TENT's conf.py: Adam lr 1e-3, beta 0.9, no weight decay, batch 128, one step a batch.
      tent) cell "$c" tent "${STREAM[@]}" optim=adam optim.lr=1e-3 ;;
      adabn|t3a) cell "$c" "$m" ;;
      # SHOT's digits code: beta 0.3, SGD recipe, batch 64, pseudo-labels once an epoch
      # (4,500 / 64 = 70 steps); 3 epochs (SHOT: 30; gpu.sh).
      shot) cell "$c" shot trainer.batch_size=64 trainer.steps=${SHOT_STEPS:-210} \
              method.interval=${SHOT_INTERVAL:-70} ;;
    esac
  done
  $PY experiments/test_time/mnistc_source.py "$OUT" "$c"
done
$PY experiments/test_time/summarize_mnistc.py "$OUT"
$PY experiments/test_time/plot_mnistc.py "$OUT" "$OUT/figures"
