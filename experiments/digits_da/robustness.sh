#!/usr/bin/env bash
# Robustness of the digits recipe on a handwritten-digit target it was not chosen on:
# scikit-learn's bundled digits (1797 8x8 images, upscaled to 28x28) as the target of the
# MNIST -> USPS recipe, with no other override. Does adaptation hurt there, and can a user
# see it without target labels (DEV risk, domain-classifier accuracy in summary.json)?
# Resumable like run.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-experiments/digits_da/runs}
SEEDS=${SEEDS:-0,1,2}
$PY -m jtl.train -m experiment=digits_m2u domain@target=sklearn_digits \
  method=source_only,dann,cdan,mcc,mdd "trainer.seeds=[$SEEDS]" trainer.progress=false \
  hydra.sweep.dir=$OUT/m2d 'hydra.sweep.subdir=${method.name}'
