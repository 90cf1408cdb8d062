#!/usr/bin/env bash
# The main job on the embedded tiny model, on a CPU in under a minute; the result goes to out/.
# Run scripts/setup.sh first. Set DIFFEDIT_MODEL to run it on a real Stable Diffusion checkpoint instead.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
mkdir -p out
# a scene "a horse and a tree on grass" edited to "a zebra and a tree on grass": input, soft map, mask, edit and demo.png in out/
diffedit demo -o out/ "$@"
