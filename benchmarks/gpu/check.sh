#!/usr/bin/env bash
# Device check (issue #18): streaming DiT + Wan VAE at the paper's sizes, eager vs torch.compile, then the
# FSDP training throughput of the 1.3B config; one JSON. About 8 minutes on one H100/H200.
#
#   benchmarks/gpu/check.sh [OUT.json]            # on a CUDA machine (default OUT: gpu_check.json)
#   benchmarks/gpu/check.sh --dry-run [OUT.json]  # the same code on the CPU at tiny sizes (< 2 minutes)
#
# Inference numbers: benchmarks/gpu/device_check.py (see its docstring). Training: benchmarks/gpu/train_throughput.py
# (when present) with --json; its object is merged under "training". A failing part leaves its error in the JSON.
set -u
cd "$(dirname "$0")/../.."
DRY=""
if [ "${1:-}" = "--dry-run" ]; then DRY="--dry-run"; shift; fi
OUT="${1:-gpu_check.json}"
PY="${PYTHON:-python}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# inference: at most 5.5 minutes (two configs x eager/compiled, 8 timed chunks each; partial JSON kept on timeout)
timeout "${INFER_TIMEOUT_S:-330}" "$PY" benchmarks/gpu/device_check.py $DRY --json "$TMP/infer.json"
echo "inference exit $?" >&2

TRAIN_RC=skipped
if [ -f benchmarks/gpu/train_throughput.py ]; then
  TINY=""; [ -n "$DRY" ] && TINY="--tiny"
  timeout "${TRAIN_TIMEOUT_S:-140}" "$PY" benchmarks/gpu/train_throughput.py --json "$TMP/train.json" --steps 20 $TINY
  TRAIN_RC=$?
fi

"$PY" - "$TMP/infer.json" "$TMP/train.json" "$OUT" "$TRAIN_RC" <<'PYEOF'
import json, sys
from pathlib import Path
infer, train, out, rc = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
result = json.loads(infer.read_text()) if infer.exists() else {"error": "device_check.py wrote nothing"}
if train.exists():
    result["training"] = json.loads(train.read_text())
elif rc != "skipped":
    result["training"] = {"error": f"train_throughput.py exited {rc} without a result"}
else:
    result["training"] = None
out.write_text(json.dumps(result, indent=1))
print(f"wrote {out}")
PYEOF
