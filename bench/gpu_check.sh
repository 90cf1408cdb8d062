#!/usr/bin/env bash
# The device visit in one command: install the carried wheels (diffusers, nbdev, ... that the GPU image lacks) from
# .whl/ into /tmp/site, point the scenes at the carried OpenMoji font, then run bench/gpu_check.py; its JSON and log
# go to $OUT (or bench/results/ when OUT is unset). Arguments pass through to gpu_check.py.
set -uo pipefail
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
[ -f .whl/glyf_colr0.ttf ] && export OPENMOJI_FONT=$PWD/.whl/glyf_colr0.ttf
out=${OUT:-bench/results}; mkdir -p "$out"
PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --out "$out/gpu_check.json" "$@" 2>&1 | tee "$out/gpu_check.log"
