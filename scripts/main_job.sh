#!/usr/bin/env bash
# The main job on the embedded tiny model, on a CPU in under a minute; the result goes to out/.
# Run scripts/setup.sh first. Set DIFFEDIT_MODEL to run it on a real Stable Diffusion checkpoint instead.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
mkdir -p out
if python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('diffedit.demo') is None)"; then
  python -m diffedit.demo "$@"
else
  python - <<'PY'
import time
from diffedit.core import load_pipe, sample, image_grid
t0 = time.time()
pipe = load_pipe()
prompts = ["a horse and a tree on grass", "a zebra on snow", "a dog and a cat on sand", "a car and a house at night"]
image_grid(sample(pipe, prompts, steps=50, guidance_scale=7.5, seed=0), scale=4).save("out/grid.png")
print(f"wrote out/grid.png ({len(prompts)} prompts, 50 steps) in {time.time()-t0:.1f} s")
PY
fi
