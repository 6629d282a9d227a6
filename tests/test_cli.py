"""The command line as a user calls it (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamavatar", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0
    assert "bench" in r.stdout


def test_bench_stream_json():
    r = run_cli("bench", "stream", "--model", "random-tiny", "--seconds", "1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("rtf", "ffd_s", "chunk_ms", "peak_rss_mb", "resolution", "fps", "model"):
        assert key in out
    assert out["model"] == "random-tiny" and out["timed"] == ["dit"]
    assert out["chunks"] == 3 and out["fps"] == 25
    assert out["rtf"] > 0 and out["chunk_ms"]["p95"] >= out["chunk_ms"]["p50"] > 0



def test_bench_stream_compiled_json_has_flops_and_throughput():
    from streamavatar.bench.flops import dit_chunk_flops
    from streamavatar.config import model_preset

    r = run_cli("bench", "stream", "--model", "random-tiny", "--seconds", "0.5", "--json", "--compile", "aot_eager")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    cfg = model_preset("tiny", ring_cache=True)
    assert out["compile"] == "aot_eager"
    assert out["flops"]["per_chunk"] == dit_chunk_flops(cfg.dit, cfg.stream, 8 * 8).per_chunk  # 128 px → 8×8
    t = out["dit_throughput"]
    assert t["tflops"] > 0 and t["peak_bf16_tflops"] is None and t["fraction_of_peak"] is None


def test_bad_input_is_one_line_exit_2():
    for args in (["bench", "stream", "--seconds", "0"], ["bench", "stream", "--seconds", "nan"],
                 ["bench", "stream", "--model", "random-tiny", "--resolution", "100"],
                 ["bench", "stream", "--resolution", "128"], ["bench", "stream", "--model", "nope"],
                 ["no-such-command"]):
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_parser_builds_without_the_training_stack():
    """Every `python -m streamavatar` call builds the whole parser first; it must not load torch (≈1.5 s) or
    the other heavy packages, so help, usage errors and the start of every command stay fast."""
    code = ("import sys; from streamavatar.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'numpy', 'scipy', 'av', 'safetensors', 'cv2') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout
