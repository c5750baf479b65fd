#!/bin/bash
# all-MiniLM-L6-v2 frozen on raw Amazon reviews (issue 23): source_only, dann and target_only
# on cached frozen MiniLM features (transfer=feature_extractor: a new linear head; dann's
# discriminator on the 384-d mean-pooled features), seeds vmapped, the 12 ordered pairs of
# books, dvd, electronics, kitchen (or the pairs given). Resumable: a finished run is skipped.
# The frozen encoder runs once per review (jtl/train/features.py, trainer.feature_cache=auto,
# the default): the first run of a product pays the MiniLM passes, later ones read the cache.
# Usage: experiments/amazon_minilm/run.sh [runs dir] [seeds, default 0,1,2] [pairs "b:k d:e"]
# Split (fixed, split_seed 0): each product's 2000 labeled reviews, test_fraction 0.2 held
# out as test (400, drawn without labels); the other 1600 are the train pool (val_fraction
# 0.1 of it for source validation). dann reads the target's pool unlabeled; target_only trains
# on its labels (the ceiling). Hyper-parameters a priori: Adam 1e-3, batch 32, 1000 steps,
# DANN's default yaml; never tuned on target test accuracy.
# RECIPE=finetune (gpu.sh): every MiniLM parameter trained, Adam lr 2e-5, 500 steps, into
# <runs dir>/finetune/ (the frozen half: <runs dir>/frozen/).
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/amazon_minilm/runs}
SEEDS=${2:-0,1,2}
PY=${PY:-.venv/bin/python}
P=(books dvd electronics kitchen)
PAIRS=${3:-$(for s in "${P[@]}"; do for t in "${P[@]}"; do if [ "$s" != "$t" ]; then echo -n "$s:$t "; fi; done; done)}
TOK="tokenizer=all-MiniLM-L6-v2"
for pair in $PAIRS; do
  src=${pair%%:*}; tgt=${pair##*:}
  COMMON=(domain@source=amazon_raw_$src domain@target=amazon_raw_$tgt model=minilm
          source.$TOK target.$TOK source.max_length=128 target.max_length=128
          optim=adam trainer.batch_size=32 "trainer.seeds=[$SEEDS]" trainer.progress=false
          trainer.tensorboard=false)
  case ${RECIPE:-frozen} in
    frozen) COMMON+=(transfer=feature_extractor trainer.steps=1000) ;;
    finetune) COMMON+=(transfer=finetune optim.lr=2e-5 trainer.steps=500) ;;
    *) echo "RECIPE=$RECIPE: frozen or finetune" >&2; exit 2 ;;
  esac
  for method in source_only dann target_only; do
    dir=$OUT/${RECIPE:-frozen}/${src}_${tgt}/$method
    if ls "$dir"/seed*/summary.json >/dev/null 2>&1 && \
       ! grep -L '"completed"' "$dir"/seed*/summary.json | grep -q .; then
      echo "done: $dir"; continue
    fi
    $PY -m jtl.train "${COMMON[@]}" method=$method "${@:4}" hydra.run.dir="$dir"
  done
done
