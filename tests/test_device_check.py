"""The GPU device check script (``benchmarks/gpu/device_check.py``) in its CPU dry-run mode, one config, eager."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "benchmarks/gpu/device_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("device_check", mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_dry_run_writes_the_numbers(tmp_path):
    from streamavatar.bench.flops import dit_chunk_flops
    from streamavatar.config import model_preset

    check = _module()
    out = tmp_path / "check.json"
    assert check.main(["--dry-run", "--only", "wan2.1-1.3b", "--no-compile", "--chunks", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    eager = run["eager"]
    assert "error" not in eager, eager
    for key in ("fps", "rtf", "rtf_dit", "rtf_vae", "ffd_s", "dit_ms_p50", "vae_ms_p50", "peak_memory_mb"):
        assert key in eager
    assert eager["fps"] > 0 and eager["rtf"] > 0 and eager["ffd_s"] > 0
    assert abs(eager["rtf"] - eager["rtf_dit"] - eager["rtf_vae"]) < 1e-3
    # the FLOPs are those of the preset's layout at the dry run's width and depth, 32x32 px -> 2x2 tokens
    mc = model_preset("wan2.1-1.3b")
    dit = check.replace(mc.dit, **dict(check.DRY[0].shrink))
    assert eager["flops"]["per_chunk"] == dit_chunk_flops(dit, mc.stream, 4).per_chunk
    assert eager["dit_throughput"]["fraction_of_peak"] is None  # a CPU has no peak in the table


def test_check_sh_parses():
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks/gpu/check.sh")]).returncode == 0
