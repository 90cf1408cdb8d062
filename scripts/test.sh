#!/usr/bin/env bash
# The test command: every notebook in nbs/ with nbdev-test (offline; cells flagged slow/gpu are skipped, pass
# `--flags gpu` to run the GPU cells too; or give one notebook or folder), then pytest on tests/ if that folder exists.
# Ends with the line "N passed, N failed, N skipped (why)", counting notebooks and pytest tests, each skip's reason in it.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TRANSFORMERS_VERBOSITY=${TRANSFORMERS_VERBOSITY:-error}
# nbdev-test runs one notebook per core: one thread each keeps torch's threads from fighting over the cores
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# the notebooks nbdev-test will run: all of nbs/, or the notebook or folder given as an argument
total=$(python - "$@" <<'PY'
import sys
from pathlib import Path
from nbdev.config import get_config
from nbdev.doclinks import nbglob
paths = [a for a in sys.argv[1:] if Path(a).exists()]
p = Path(paths[0]) if paths else get_config().nbs_path
print(1 if p.is_file() else len(nbglob(p, as_path=True)))
PY
)
echo "nbdev-test: $total notebooks"
start=$SECONDS
nbdev-test --timing "$@" 2> >(tee "$tmp/err" >&2)
rc=$?
wait
if [ $rc -eq 0 ]; then nb_failed=0
else
  # nbdev-test lists the failed notebooks, one per tab-indented line, after its "Failed On" header
  nb_failed=$(awk '/nbdev Tests Failed On/{f=1; next} f && /^\t/{n++} END{print n+0}' "$tmp/err")
  [ "$nb_failed" -gt 0 ] || nb_failed=$total
fi
echo "notebooks: $((total-nb_failed)) passed, $nb_failed failed in $((SECONDS-start)) s"
passed=$((total-nb_failed)); failed=$nb_failed; skipped=0; why=

has_path=$(python -c "import sys, os; print(int(any(os.path.exists(a) for a in sys.argv[1:])))" "$@")
if [ -d tests ] && [ "$has_path" = 0 ]; then   # pytest runs with the whole suite, not for one notebook
  python -m pytest tests -q -rs -p no:cacheprovider | tee "$tmp/pytest"   # -rs: one "SKIPPED [n] file:line: reason" line per reason
  prc=${PIPESTATUS[0]}
  summary=$(tail -n 1 "$tmp/pytest")   # e.g. "1 failed, 12 passed, 2 skipped, 1 error in 3.2s"
  p=$(grep -oE '[0-9]+ passed' <<<"$summary" | awk '{s+=$1} END{print s+0}')
  f=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$summary" | awk '{s+=$1} END{print s+0}')
  skipped=$(grep -oE '[0-9]+ skipped' <<<"$summary" | awk '{s+=$1} END{print s+0}')
  # the reasons, counted: "3: gradio is not installed (pip install -e '.[app]'); 1: this machine has CUDA"
  why=$(sed -nE 's/^SKIPPED \[([0-9]+)\] [^:]+:[0-9]+: (.*)$/\1\t\2/p' "$tmp/pytest" |
        awk -F'\t' '{n[$2]+=$1} END{for (r in n) printf "%s%d: %s", (k++ ? "; " : ""), n[r], r}')
  # pytest's 5 means no tests were collected; any other non-zero exit with nothing counted is one failure
  if [ $prc -ne 0 ] && [ $prc -ne 5 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed+p)); failed=$((failed+f))
fi

echo "$passed passed, $failed failed, $skipped skipped${why:+ ($why)}"
[ $failed -eq 0 ]
