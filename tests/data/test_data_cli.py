"""``streamavatar data synth`` / ``data check`` as a user calls them (subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import soundfile as sf

from streamavatar.cli import main
from streamavatar.data.video_io import write_mp4


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamavatar", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def _one_line_exit_2(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """``streamavatar ARGS`` through the same entry point, without a new interpreter (cheap cases)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_exit_2_in_process(capsys, *args: str) -> str:
    code, _, err = in_process(capsys, *args)
    assert code == 2, (args, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_synth_and_check(tmp_path, capsys):
    out = tmp_path / "c"
    r = run_cli("data", "synth", "--out", str(out), "--clips", "2", "--seconds", "1", "--seed", "2", "--quiet",
                "--workers", "1")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["clips"] == 2 and summary["frames_per_clip"] == 25 and summary["identities"] == 1
    assert (out / "clips/clip_00001/video.mp4").is_file()
    code, stdout, err = in_process(capsys, "data", "check", "--data", str(out))
    assert code == 0, err
    assert json.loads(stdout)["clips"] == 2


def test_bad_input(tmp_path, capsys):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    base = ["data", "synth", "--out", str(tmp_path / "o"), "--quiet"]
    # as a user calls it: a bad count, an output folder that cannot be made
    for args in (base + ["--clips", "0", "--seconds", "1"],
                 ["data", "synth", "--out", str(afile / "sub"), "--clips", "1", "--seconds", "1"]):
        _one_line_exit_2(run_cli(*args))
    for args in (base + ["--clips", "1", "--seconds", "1", "--resolution", "100"],
                 base + ["--clips", "-3", "--seconds", "1"], base + ["--clips", "1", "--seconds", "0"],
                 base + ["--clips", "1", "--seconds", "-2"], base + ["--clips", "1", "--seconds", "nan"],
                 base + ["--clips", "x", "--seconds", "1"], base + ["--clips", "1", "--seconds", "0.01"],
                 ["data", "synth", "--out", str(afile), "--clips", "1", "--seconds", "1"]):
        _one_line_exit_2_in_process(capsys, *args)


def test_check_reports_silent_and_unreadable_files(tmp_path, capsys):
    frames = np.zeros((10, 16, 16, 3), np.uint8)
    write_mp4(tmp_path / "quiet.mp4", frames, 25, np.zeros(6400, np.float32))
    r = run_cli("data", "check", "--data", str(tmp_path))
    _one_line_exit_2(r)
    assert "silent audio" in r.stderr and "quiet.mp4" in r.stderr
    (tmp_path / "quiet.mp4").write_bytes(b"junk")
    assert "unreadable" in _one_line_exit_2_in_process(capsys, "data", "check", "--data", str(tmp_path))
    _one_line_exit_2_in_process(capsys, "data", "check", "--data", str(tmp_path / "missing"))
    _one_line_exit_2_in_process(capsys, "data", "sheet", "--data", str(tmp_path), "--out", str(tmp_path / "s.png"))


def test_missing_system_espeak_says_how_to_install(tmp_path):
    # Asking for the system program with nothing on PATH: one line that says how to install it or go back.
    env = {**os.environ, "PATH": str(tmp_path), "STREAMAVATAR_ESPEAK": "system"}
    r = run_cli("data", "synth", "--out", str(tmp_path / "o"), "--clips", "1", "--seconds", "1", env=env)
    _one_line_exit_2(r)
    assert "espeak-ng" in r.stderr and "apt-get install espeak-ng" in r.stderr and "STREAMAVATAR_ESPEAK" in r.stderr
    env["STREAMAVATAR_ESPEAK"] = "festival"
    r = run_cli("data", "synth", "--out", str(tmp_path / "o"), "--clips", "1", "--seconds", "1", env=env)
    _one_line_exit_2(r)
    assert "'library' or 'system'" in r.stderr


def test_corpus_speech_needs_no_system_program(tmp_path):
    # The default engine is the wheel's libespeak-ng: a corpus renders with an empty PATH.
    env = {**os.environ, "PATH": str(tmp_path)}
    env.pop("STREAMAVATAR_ESPEAK", None)
    r = run_cli("data", "synth", "--out", str(tmp_path / "o"), "--clips", "1", "--seconds", "1", env=env)
    assert r.returncode == 0, r.stderr
    wavs = sorted((tmp_path / "o").rglob("*.wav"))
    assert wavs and any(sf.info(str(w)).frames > 0 for w in wavs)
