#!/bin/bash
# The fine-tuned half of the MiniLM study (issue 23), for a GPU: every MiniLM parameter
# trained (transfer=finetune), AdamW-style Adam lr 2e-5 (sentence-transformers' and BERT's
# fine-tuning default, a priori), batch 32, length 128, 500 steps (~10 epochs of the 1440
# source train reviews), seeds 0-4; then the frozen half (run.sh) if not there yet.
# Usage: experiments/amazon_minilm/gpu.sh [runs dir]
set -e
cd "$(dirname "$0")/../.."
OUT=${1:-experiments/amazon_minilm/runs}
PY=${PY:-.venv/bin/python}
TOK="tokenizer=all-MiniLM-L6-v2"
COMMON=(domain@source=amazon_raw_books domain@target=amazon_raw_kitchen model=minilm
        source.$TOK target.$TOK source.max_length=128 target.max_length=128
        transfer=finetune optim=adam optim.lr=2e-5 trainer.batch_size=32 trainer.steps=500
        "trainer.seeds=[0,1,2,3,4]" trainer.progress=false)
for method in source_only dann target_only; do
  $PY -m jtl.train "${COMMON[@]}" method=$method hydra.run.dir=$OUT/finetune/$method
done
$PY -m jtl.report "$OUT/finetune" --ntg --metric target/test/accuracy \
    selected/val/target/test/accuracy
experiments/amazon_minilm/run.sh "$OUT"
