"""``streamavatar eval`` as a user calls it."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "streamavatar", "eval", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def test_eval_truth_then_run_writes_report(tiny_corpus, tmp_path):
    gen = tmp_path / "generated"
    r = _run("truth", "--corpus", str(tiny_corpus), "--split", "train", "--out", str(gen))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in gen.glob("*.mp4")) == ["clip_00000.mp4", "clip_00001.mp4"]
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"rtf": 0.5, "ffd_s": 0.3, "model": "x"}))
    out = tmp_path / "out"
    r = _run("run", str(gen), "--corpus", str(tiny_corpus), "--out", str(out), "--bench", str(bench),
             "--baseline", str(gen))
    assert r.returncode == 0, r.stderr
    for name in ("metrics.json", "report.md", "drift.png", "sync_scatter.png"):
        assert (out / name).is_file()
    s = json.loads((out / "metrics.json").read_text())["summary"]
    assert s["clips"] == 2
    assert s["mouth_r"] == 1.0 and s["mouth_mae"] == 0.0
    assert s["rtf"] == 0.5 and s["ffd_s"] == 0.3
    assert s["listen_head_var_deg2_baseline"] == s["listen_head_var_deg2_generated"]
    assert "| mouth opening r vs ground-truth video" in r.stdout


def test_bad_input_is_one_line_exit_2(tiny_corpus, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _run("run", str(empty), "--corpus", str(tiny_corpus), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "no <clip_id>.mp4 files" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (empty / "clip_99999.mp4").write_bytes(b"")
    r = _run("run", str(empty), "--corpus", str(tiny_corpus), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "no corpus clip 'clip_99999'" in r.stderr
    r = _run("run", str(empty), "--corpus", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--corpus" in r.stderr
    r = _run("train-judge", "--corpus", str(tiny_corpus), "--out", str(tmp_path / "j"), "--minutes", "-1")
    assert r.returncode == 2 and "positive number" in r.stderr
