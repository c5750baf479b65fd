#!/bin/bash
# all-MiniLM-L6-v2 on raw Amazon reviews, books -> kitchen (issue 23): source_only, dann and
# target_only on frozen MiniLM features (transfer=feature_extractor: a new linear head; dann's
# discriminator on the 384-d mean-pooled features), seeds vmapped. Resumable.
# Usage: experiments/amazon_minilm/run.sh [runs dir] [seeds, default 0,1,2,3,4]
# Split (fixed, split_seed 0): each product's 2000 labeled reviews, test_fraction 0.2 held
# out as test (400, drawn without labels); the other 1600 are the train pool (val_fraction
# 0.1 of it for source validation). dann reads kitchen's pool unlabeled; target_only trains
# on its labels (the ceiling). Hyper-parameters a priori: Adam 1e-3, batch 32, 1000 steps,
# DANN's default yaml; never tuned on target test accuracy.
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/amazon_minilm/runs}
SEEDS=${2:-0,1,2,3,4}
PY=${PY:-.venv/bin/python}
TOK="tokenizer=all-MiniLM-L6-v2"
COMMON=(domain@source=amazon_raw_books domain@target=amazon_raw_kitchen model=minilm
        source.$TOK target.$TOK source.max_length=128 target.max_length=128
        transfer=feature_extractor optim=adam trainer.batch_size=32 trainer.steps=1000
        "trainer.seeds=[$SEEDS]" trainer.progress=false)
for method in source_only dann target_only; do
  $PY -m jtl.train "${COMMON[@]}" method=$method "${@:3}" hydra.run.dir=$OUT/frozen/$method
done
$PY -m jtl.report "$OUT/frozen" --ntg --metric target/test/accuracy \
    selected/val/target/test/accuracy
