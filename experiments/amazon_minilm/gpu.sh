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
RECIPE=finetune experiments/amazon_minilm/run.sh "$@"
experiments/amazon_minilm/run.sh "$@"
