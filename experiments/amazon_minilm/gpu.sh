#!/bin/bash
# The fine-tuned half of the MiniLM study (issue 23), for a GPU: every MiniLM parameter
# trained (transfer=finetune: the frozen-feature cache does not apply), Adam lr 2e-5
# (sentence-transformers' and BERT's fine-tuning default, a priori), batch 32, length 128,
# 500 steps (~11 epochs of the 1440 source train reviews), the same split and pairs as
# run.sh; then the frozen half (run.sh) if not there yet. Resumable.
# Usage: experiments/amazon_minilm/gpu.sh [runs dir] [seeds, default 0,1,2] [pairs "books:kitchen ..."]
# Results: .venv/bin/python experiments/amazon_minilm/results.py [runs dir] [out dir] finetune
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
          transfer=finetune optim=adam optim.lr=2e-5 trainer.batch_size=32 trainer.steps=500
          "trainer.seeds=[$SEEDS]" trainer.progress=false trainer.tensorboard=false)
  for method in source_only dann target_only; do
    dir=$OUT/finetune/${src}_${tgt}/$method
    if ls "$dir"/seed*/summary.json >/dev/null 2>&1 && \
       ! grep -L '"completed"' "$dir"/seed*/summary.json | grep -q .; then
      echo "done: $dir"; continue
    fi
    $PY -m jtl.train "${COMMON[@]}" method=$method hydra.run.dir="$dir"
  done
done
experiments/amazon_minilm/run.sh "$OUT" "$SEEDS" "$PAIRS"
