#!/usr/bin/env bash
# The test command: every notebook in nbs/ with nbdev-test (offline; cells flagged slow/gpu are skipped, pass
# `--flags gpu` to run the GPU cells too; or give one notebook or folder), then pytest on tests/ if that folder exists.
# Then the lessons 00-07, the edit engine and the pipeline notebooks (REDUCED below) again with the weights in bfloat16 (DIFFEDIT_DTYPE=bfloat16,
# never saved): the CPU's stand-in for a GPU's float16, where every numeric check holds to its bfloat16 tolerance
# (`diffedit.core.tol`); then the edit engine and the pipeline notebooks (REDUCED16) in float16, which a CPU runs too, slowly.
# DIFFEDIT_TEST_DTYPES picks the runs (default "float32 bfloat16 float16"; "float32" runs float32's alone; the float32 run is
# the default dtype's: float32 on a CPU, whatever DIFFEDIT_DTYPE says if it is set).
# pytest runs one worker per core (PYTEST_WORKERS to choose).
# Ends with the line "N passed, N failed, N skipped (why)", counting notebooks (once per dtype) and pytest tests, each skip's reason in it.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TRANSFORMERS_VERBOSITY=${TRANSFORMERS_VERBOSITY:-error}
# nbdev-test runs one notebook per core: one thread each keeps torch's threads from fighting over the cores
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
dtypes=${DIFFEDIT_TEST_DTYPES:-float32 bfloat16 float16}
for d in $dtypes; do
  case $d in float32|bfloat16|float16) ;; *) echo "DIFFEDIT_TEST_DTYPES takes float32, bfloat16 and float16, got '$d'"; echo "0 passed, 1 failed, 0 skipped"; exit 1;; esac
done
has() { [[ " $dtypes " == *" $1 "* ]]; }
REDUCED='^(00_core|01_guidance|02_paper|03_mask|04_encode|05_decode|06_quality|07_interpolate|13_pipeline|20_edit)\.ipynb$'
REDUCED16='^(13_pipeline|20_edit)\.ipynb$'

count() {  # count [FILE_RE] ARGS...: how many notebooks nbdev-test will run for ARGS: all of nbs/, or the notebook or folder given
python - "$@" <<'PY'
import re, sys
from pathlib import Path
from nbdev.config import get_config
from nbdev.doclinks import nbglob
file_re, args = sys.argv[1], sys.argv[2:]
paths = [a for a in args if Path(a).exists()]
p = Path(paths[0]) if paths else get_config().nbs_path
if p.is_file(): print(int(not file_re or bool(re.search(file_re, p.name))))
else: print(len(nbglob(p, as_path=True, **({'file_re': file_re} if file_re else {}))))
PY
}
passed=0; failed=0; skipped=0; why=
notebooks() {  # notebooks LABEL N ARGS...: nbdev-test ARGS, N notebooks, counted into passed/failed
  local label=$1 n=$2 start=$SECONDS rc f=0; shift 2
  echo "nbdev-test$label: $n notebooks"
  [ "$n" -gt 0 ] || return 0
  nbdev-test --timing "$@" 2> >(tee "$tmp/err" >&2)
  rc=$?
  wait
  if [ $rc -ne 0 ]; then
    # nbdev-test lists the failed notebooks, one per tab-indented line, after its "Failed On" header
    f=$(awk '/nbdev Tests Failed On/{f=1; next} f && /^\t/{n++} END{print n+0}' "$tmp/err")
    [ "$f" -gt 0 ] || f=$n
  fi
  echo "notebooks$label: $((n-f)) passed, $f failed in $((SECONDS-start)) s"
  passed=$((passed+n-f)); failed=$((failed+f))
}

if has float32; then notebooks "" "$(count "" "$@")" "$@"; fi

has_path=$(python -c "import sys, os; print(int(any(os.path.exists(a) for a in sys.argv[1:])))" "$@")
if has float32 && [ -d tests ] && [ "$has_path" = 0 ]; then   # pytest runs with the whole suite, not for one notebook
  # one worker per core (pytest-xdist), each file's tests on one worker (--dist loadfile: a file's fixtures are built once)
  workers=${PYTEST_WORKERS:-$(python -c "import os; print(max(1, min(4, len(os.sched_getaffinity(0)))))")}
  python -m pytest tests -q -rs -p no:cacheprovider -n "$workers" --dist loadfile | tee "$tmp/pytest"   # -rs: one "SKIPPED [n] file:line: reason" line per reason
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

reduced() {  # reduced DTYPE FILE_RE: the same checks in reduced precision, never saved (--save is float32's alone)
  local d=$1 re=$2 n args=(); for a in "${@:3}"; do [ "$a" = --save ] || args+=("$a"); done
  n=$(count "$re" "${args[@]}")
  if [ "$has_path" = 1 ] && [ -n "$(python -c "import sys, os; print(''.join(a for a in sys.argv[1:] if os.path.isfile(a)))" "${args[@]}")" ]
  then DIFFEDIT_DTYPE=$d notebooks " ($d)" "$n" "${args[@]}"
  else DIFFEDIT_DTYPE=$d notebooks " ($d)" "$n" --file-re "$re" "${args[@]}"
  fi
}
if has bfloat16; then reduced bfloat16 "$REDUCED" "$@"; fi
if has float16; then reduced float16 "$REDUCED16" "$@"; fi

echo "$passed passed, $failed failed, $skipped skipped${why:+ ($why)}"
[ $failed -eq 0 ]
