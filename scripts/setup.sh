#!/usr/bin/env bash
# Set up .venv: the CPU build of torch first (so pip never pulls a multi-GB CUDA build), then this project with its dev tools, the app
# extra and Playwright, and Debian's chromium where apt-get can install it: then scripts/test.sh runs the whole suite.
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
# the app extra (Gradio) and Playwright: the app and docs tests drive the app and the site in a real browser
pip install -e ".[dev,app]" playwright
# that browser is Debian's chromium, never one Playwright downloads; installed here when this user can run apt-get
CHROMIUM=${DIFFEDIT_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then echo "chromium: $CHROMIUM"
elif command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium || echo "warning: apt-get could not install chromium: the browser tests will be skipped"
else
  echo "warning: no Chromium at $CHROMIUM and no apt-get as root: the browser tests will be skipped (install chromium, or set DIFFEDIT_CHROMIUM)"
fi
python -c "import torch, diffusers, transformers, nbdev, diffedit; print('torch', torch.__version__, '| diffusers', diffusers.__version__, '| transformers', transformers.__version__, '| nbdev', nbdev.__version__, '| diffedit', diffedit.__version__)"
python -c "import gradio, playwright; print('gradio', gradio.__version__, '| playwright installed')"
