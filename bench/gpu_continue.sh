#!/usr/bin/env bash
# Train the embedded model further in one GPU visit: install the carried wheels (diffusers, ... that the GPU image lacks) from
# .whl/ into /tmp/site, point the scenes at the carried OpenMoji font, then run bench/gpu_continue.py with its checkpoints in
# /tmp/continue; continue.json (rewritten after each phase), continue.log and the new weights' tar parts go to $OUT (or
# bench/results/continue/ when OUT is unset). Arguments pass through to gpu_continue.py (e.g. --budget 500).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
if [ -z "${SKIP_WHEELS:-}" ] && ls .whl/*.whl >/dev/null 2>&1; then   # SKIP_WHEELS=1: use the installed packages (the test suite does)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
python3 -c "from diffusers import StableDiffusionPipeline" 2>/dev/null || {
  [ -d .whl/full ] || { echo "diffusers does not import: carry its wheels in .whl/"; exit 1; }
  echo "installing carried transformers stack"; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/full/*.whl || exit 1; }
python3 -c "import accelerate" || { echo "accelerate is missing: carry its wheel (and psutil's) in .whl/"; exit 1; }
[ -f .whl/glyf_colr0.ttf ] && export OPENMOJI_FONT=$PWD/.whl/glyf_colr0.ttf
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
out=${OUT:-bench/results/continue}; mkdir -p "$out"
python3 bench/gpu_continue.py --out "$out" --work /tmp/continue "$@" 2>&1 | grep --line-buffered -v "it/s\]" | tee "$out/continue.log"
ls -la "$out"
