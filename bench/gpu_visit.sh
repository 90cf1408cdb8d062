#!/usr/bin/env bash
# The GPU visit of the notebooks, the single edit, the batch, SDXL and the compile options, in one command (bench/gpu_visit.py
# says what each phase measures). On the device machine: install the carried wheels from .whl/ into /tmp/site, point the scenes
# at the carried OpenMoji font, run the phases under a time budget; visit.json, visit_<phase>.json and visit.log go to $OUT.
#   bench/gpu_visit.sh --wheels     here, before the visit: download the wheels the GPU image lacks into .whl/ (ignored by git)
#   bench/gpu_visit.sh              on the device machine (carry .whl); arguments pass through to gpu_visit.py (--budget 700 ...)
#   TINY=1 bench/gpu_visit.sh       here: every phase at a tiny size on the CPU, into a temporary $OUT unless OUT is set
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
WHEELS="annotated-types==0.8.0 asttokens==3.0.2 astunparse==1.6.3 diffusers==0.42.1 execnb==0.3.4 executing==2.3.0 fastcore==2.2.41
fastgit==0.1.4 fastspec==0.2.6 fasttransport==0.0.4 ghapi==2.1.4 httpcore2==2.16.2 httpx2==2.16.2 importlib-metadata==10.2.0
ipython==9.18.1 ipython-pygments-lexers==1.1.1 jedi==0.20.1 lazy-importer==0.1.0 matplotlib-inline==0.2.2 nbdev==3.3.26 parso==0.8.7
pexpect==4.9.0 prompt-toolkit==3.0.53 ptyprocess==0.7.0 pure-eval==0.2.4 pydantic==2.14.4 pydantic-core==2.50.5 stack-data==0.6.3
traitlets==5.16.1 truststore==0.10.5 typing-inspection==0.4.5 tzdata==2026.6 watchdog==7.1.0 wcwidth==0.9.4"   # what the image lacks for the notebooks
if [ "${1:-}" = "--wheels" ]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
  mkdir -p .whl
  for w in $WHEELS; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl "$w" || echo "no wheel for $w"
  done
  python3 -c "from diffedit.scenes import font_path; print(font_path())" 2>/dev/null | xargs -I{} cp {} .whl/glyf_colr0.ttf
  du -sh .whl; exit 0
fi
if [ -n "${TINY:-}" ]; then
  export OUT=${OUT:-$(mktemp -d /tmp/gpu_visit_tiny.XXXXXX)} OMP_NUM_THREADS=1
  set -- --cpu-tiny --work "$OUT.work" "$@"
else
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
  fi
  [ -f .whl/glyf_colr0.ttf ] && export OPENMOJI_FONT=$PWD/.whl/glyf_colr0.ttf
  python3 -c "import diffusers, nbdev" 2>/dev/null || { echo "diffusers or nbdev does not import: run bench/gpu_visit.sh --wheels here and carry .whl"; exit 1; }
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
fi
out=${OUT:-bench/results/visit}; mkdir -p "$out"
python3 bench/gpu_visit.py --out "$out" "$@" 2>&1 | grep --line-buffered -v "it/s\]" | tee "$out/visit.log"
ls -la "$out"
