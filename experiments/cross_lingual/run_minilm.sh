#!/bin/bash
# The offline English encoder on Webis-CLS-10 (issue 23): all-MiniLM-L6-v2 frozen
# (transfer=feature_extractor, 384-d mean-pooled features computed once per review and cached,
# jtl/train/features.py), English <cat> -> German / French / Japanese <cat>, x {source_only,
# dann, target_only}, seeds 0-2 vmapped in one program per pair and method. Resumable: a
# method whose seeds all completed is skipped. NECK=bottleneck (default): TLlib's Linear 256 +
# BatchNorm + ReLU under the head and DANN's discriminator, so DANN has a layer to align;
# NECK=linear: a linear head on the frozen features (source_only and target_only only: DANN
# has nothing trainable under its reversal there). Training a priori, the protocol of
# experiments/amazon_minilm: Adam 1e-3, batch 32, 1000 steps, 128 tokens, jtl's dann.yaml.
# Usage: experiments/cross_lingual/run_minilm.sh [runs dir] [pair ...]  (pairs as fr_books)
set -e
cd "$(dirname "$0")/../.."
NECK=${NECK:-bottleneck}
OUT=${1:-experiments/cross_lingual/runs_minilm/$NECK}
shift || true
PY=${PY:-.venv/bin/python}
PAIRS=${*:-fr_books de_books jp_books fr_dvd de_dvd jp_dvd fr_music de_music jp_music}
TOK="tokenizer=all-MiniLM-L6-v2"
case $NECK in
  bottleneck) HEAD=(neck=bottleneck neck.bottleneck_dim=256); METHODS="source_only dann target_only" ;;
  linear) HEAD=(); METHODS="source_only target_only" ;;
  *) echo "NECK=$NECK: bottleneck or linear" >&2; exit 2 ;;
esac
for pair in $PAIRS; do
  cat=${pair#*_}
  for method in $METHODS; do
    dir=$OUT/$pair/$method
    if ls "$dir"/seed*/summary.json >/dev/null 2>&1 && \
       ! grep -L '"completed"' "$dir"/seed*/summary.json | grep -q .; then
      echo "done: $dir"; continue
    fi
    $PY -m jtl.train domain@source=webis_en_$cat domain@target=webis_$pair model=minilm \
        source.$TOK target.$TOK source.max_length=128 target.max_length=128 \
        transfer=feature_extractor "${HEAD[@]}" optim=adam trainer.batch_size=32 \
        trainer.steps=1000 'trainer.seeds=[0,1,2]' trainer.progress=false \
        trainer.tensorboard=false method=$method hydra.run.dir="$dir"
  done
done
# The record: each run's summary and config (small; metrics and checkpoints stay in $OUT).
RES=${RES:-experiments/cross_lingual/results_minilm/$NECK}
(cd "$OUT" && find . -path '*/seed*/summary.json' -o -path '*/seed*/.hydra/config.yaml') |
  while read -r f; do mkdir -p "$RES/$(dirname "$f")" && cp "$OUT/$f" "$RES/$f"; done
