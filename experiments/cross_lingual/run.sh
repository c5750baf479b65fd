#!/bin/bash
# Cross-lingual sentiment on Webis-CLS-10 with bag-of-words features: English -> German,
# French, Japanese, same category (books, dvd, music), x {source_only, dann_amazon,
# target_only}, seeds 0-2 vmapped into one program per pair and method
# (experiment=cross_lingual_bow: DANN's Amazon network, optimizer and budget). Resumable:
# completed seeds are not retrained. One core (taskset), single-threaded XLA.
# Usage: experiments/cross_lingual/run.sh [runs dir] [pair ...]   (pairs as fr_books; default all)
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/cross_lingual/runs}
shift || true
PY=${PY:-.venv/bin/python}
CORE=${CORE:-0}
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
PAIRS=${*:-fr_books de_books jp_books fr_dvd de_dvd jp_dvd fr_music de_music jp_music}
for pair in $PAIRS; do
  cat=${pair#*_}
  for method in source_only dann_amazon target_only; do
    taskset -c "$CORE" $PY -m jtl.train experiment=cross_lingual_bow method=$method \
        domain@source=webis_en_$cat domain@target=webis_$pair \
        'trainer.seeds=[0,1,2]' trainer.progress=false trainer.tensorboard=false \
        hydra.run.dir=$OUT/$pair/${method%_amazon}
  done
done
# The record: each run's summary and config (small; metrics and checkpoints stay in $OUT).
RES=experiments/cross_lingual/results
(cd "$OUT" && find . -path '*/seed*/summary.json' -o -path '*/seed*/.hydra/config.yaml') |
  while read -r f; do mkdir -p "$RES/$(dirname "$f")" && cp "$OUT/$f" "$RES/$f"; done
$PY experiments/cross_lingual/summarize.py "$OUT" | tee $RES/table.md
