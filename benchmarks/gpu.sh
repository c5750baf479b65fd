#!/usr/bin/env bash
# Every speed figure of jtl on an accelerator, in one go (a few minutes on one GPU):
#   bash benchmarks/gpu.sh                   # PY=.venv/bin/python by default
# Prints the device, then each benchmark's lines; paste them into benchmarks/README.md with
# the device named. Each step has a time limit, so one stuck part does not eat the rest.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LIMIT=${LIMIT:-150}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
  --format=csv,noheader
$PY -c "import jax; print('jax', jax.__version__, jax.devices())"
run() { echo "== $*"; timeout "$LIMIT" $PY "$@" 2>&1 | grep -v -E "^(WARNING|I0000|W0000)"; }
run benchmarks/device_step.py --steps 500 --batch-size 128
run benchmarks/trainer_speed.py --steps 500 --repeats 1
[ -f benchmarks/gpu_conv.py ] && run benchmarks/gpu_conv.py
run benchmarks/vmap_seeds.py --steps 2000
LIMIT=900 run benchmarks/vmap_search.py --steps 500   # 20 samples of irm, vmapped vs 20 runs
# Pretrained backbones' training step (EfficientNet-Lite0, ResNet-50, 224 x 224, batch 32) vs
# PyTorch; TORCH_PYTHON: a Python with torch + torchvision + efficientnet-lite-pytorch.
export TORCH_PYTHON=${TORCH_PYTHON:-$PY}
for dt in float32 bfloat16; do LIMIT=600 run benchmarks/pretrained_step.py --steps 20 --dtype $dt; done
# MiniLM fine-tuning step (batch 32, length 128), jtl vs transformers; TORCH_PYTHON as above.
LIMIT=600 run benchmarks/minilm_step.py --steps 20 --torch-python "$TORCH_PYTHON"
