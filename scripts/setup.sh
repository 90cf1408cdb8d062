#!/usr/bin/env bash
# Set up .venv: the CPU build of torch first (so pip never pulls a multi-GB CUDA build), then this project with its dev tools.
# Safe to run again: it reuses .venv and skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=2.13.0

[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
. .venv/bin/activate

if python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH')" 2>/dev/null; then
  echo "torch $TORCH already installed"
else
  # a pinned version: pip takes the CPU wheel from the local wheel folder (find-links) where there is one
  pip install "torch==$TORCH"
fi
pip install -e ".[dev]"
python -c "import torch, diffusers, transformers, nbdev, diffedit; print('torch', torch.__version__, '| diffusers', diffusers.__version__, '| transformers', transformers.__version__, '| nbdev', nbdev.__version__, '| diffedit', diffedit.__version__)"
