#!/bin/bash
# DANN's Amazon experiment (Ganin et al. 2016, Sec. 5.1) on its 5000-d count vectors: the 12
# source -> target pairs x {source_only, dann_amazon}, seeds 0-4 vmapped into one program per
# pair and method (experiment=amazon_dann_paper: the authors' shallow network, optimizer and
# budget). Resumable: completed seeds are not retrained.
# Usage: experiments/amazon_reviews/run.sh [runs dir] [pair ...]   (pairs as b2k; default all)
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/amazon_reviews/runs}
shift || true
PY=${PY:-.venv/bin/python}
declare -A NAME=([b]=books [d]=dvd [e]=electronics [k]=kitchen)
PAIRS=${*:-b2d b2e b2k d2b d2e d2k e2b e2d e2k k2b k2d k2e}
for pair in $PAIRS; do
  for method in source_only dann_amazon; do
    $PY -m jtl.train experiment=amazon_dann_paper method=$method \
        domain@source=amazon_${NAME[${pair:0:1}]} domain@target=amazon_${NAME[${pair:2:1}]} \
        'trainer.seeds=[0,1,2,3,4]' trainer.progress=false trainer.tensorboard=false \
        hydra.run.dir=$OUT/$pair/${method%_amazon}
  done
done
# The record: each run's summary and config (small; metrics and checkpoints stay in $OUT),
# the tables at source-val selection (the paper's early stopping) and at the final step, and
# the plot.
RES=experiments/amazon_reviews/results
(cd "$OUT" && find . -path '*/seed*/summary.json' -o -path '*/seed*/.hydra/config.yaml') |
  while read -r f; do mkdir -p "$RES/$(dirname "$f")" && cp "$OUT/$f" "$RES/$f"; done
{ $PY experiments/amazon_reviews/summarize.py "$OUT" --plot $RES/jtl_vs_published.png
  echo
  $PY experiments/amazon_reviews/summarize.py "$OUT" --metric target/test/accuracy; } |
  tee $RES/table.md
