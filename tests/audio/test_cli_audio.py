"""``streamavatar bench audio`` as a user calls it."""

from __future__ import annotations

import json
import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamavatar", *args], capture_output=True, text=True, timeout=300)


def test_bench_audio_json():
    r = run_cli("bench", "audio", "--backend", "mel", "--seconds", "1.5", "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    mel = out["mel"]
    assert mel["chunks"] == 2 and mel["chunk_ms"] == 480.0 and mel["lookahead_ms"] == 80.0
    assert mel["ms_per_chunk"]["p95"] >= mel["ms_per_chunk"]["p50"] > 0


def test_bench_audio_bad_input_is_one_line():
    for args in (["--backend", "hubert"],
                 ["--backend", "wav2vec2", "--wav2vec2-dir", "/no/such/dir", "--seconds", "1"]):
        r = run_cli("bench", "audio", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
