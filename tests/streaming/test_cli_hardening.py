"""``generate`` as a user (or a process manager) runs it: outputs are replaced only when complete, signals unwind
cleanly, and every input is checked before the model loads, with messages that say what to do.

Signals are real (``send_signal`` on a ``streamavatar generate`` subprocess) and the model is the small random one.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from streamavatar import constants as K
from streamavatar.data.video_io import probe_video
from streamavatar.streaming import cli as streaming_cli
from streamavatar.streaming import offline

OLD = b"an older video the user wants to keep\n" * 100


def _generate_cmd(media: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "streamavatar", "generate", "--image", str(media / "ref.png"), "--talk-audio",
            str(media / "talk.wav"), "--model", str(model), "--out", str(out), *extra]


def _leftovers(folder: Path, name: str) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(f".{name}.") and ".tmp" in p.name]


def _start_and_wait_for_temp(cmd: list[str], folder: Path, name: str, timeout: float = 240) -> subprocess.Popen:
    """Start ``cmd`` and return once its temporary output exists (the mp4 is being written)."""
    # A shell's background job (`pytest ... &`, as CI scripts run it) inherits SIGINT as ignored, and Python then
    # keeps ignoring it: give the child the default disposition so Ctrl-C means what it does in a terminal.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    end = time.monotonic() + timeout
    while not _leftovers(folder, name):
        if proc.poll() is not None:
            raise AssertionError(f"generate ended before writing: {proc.returncode} {proc.stderr.read()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("the temporary output never appeared")
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the run: a few chunks are generated and encoded
    return proc


@pytest.mark.parametrize("sig, status, word", [(signal.SIGTERM, 143, "terminated"),
                                               (signal.SIGINT, 130, "interrupted")])
def test_a_signal_midway_leaves_the_old_file_and_no_partial_file(media, small_model_dir, tmp_path, sig, status,
                                                                 word):
    out = tmp_path / "old.mp4"
    out.write_bytes(OLD)
    proc = _start_and_wait_for_temp(_generate_cmd(media, small_model_dir, out, "--seconds", "600"), tmp_path,
                                    out.name)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=180)  # a loaded machine finishes its chunk first
    assert proc.returncode == status, err
    assert "Traceback" not in err and word in err and len(err.strip().splitlines()) == 1, err
    assert out.read_bytes() == OLD
    assert not _leftovers(tmp_path, out.name)


def test_sigkill_midway_never_touches_the_old_file(media, small_model_dir, tmp_path):
    out = tmp_path / "old.mp4"
    out.write_bytes(OLD)
    proc = _start_and_wait_for_temp(_generate_cmd(media, small_model_dir, out, "--seconds", "600"), tmp_path,
                                    out.name)
    proc.kill()
    proc.communicate(timeout=180)
    assert out.read_bytes() == OLD  # only the hidden temporary file can remain after SIGKILL


def test_a_complete_run_replaces_the_old_file(media, small_model_dir, tmp_path):
    out = tmp_path / "old.mp4"
    out.write_bytes(OLD)
    r = subprocess.run(_generate_cmd(media, small_model_dir, out, "--seconds", "0.5"), capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    info = probe_video(out)
    # --seconds is exact to the nearest frame: 0.5 s = 12.5 frames -> 13 frames, and audio of the same length.
    assert info.n_frames == 13
    with av.open(str(out)) as c:  # the container's durations (decoders pad AAC to whole 1024-sample frames)
        durations = {s.type: float(s.duration * s.time_base) for s in c.streams}
    assert durations == {"video": 13 / K.VIDEO_FPS, "audio": 13 / K.VIDEO_FPS}
    assert not _leftovers(tmp_path, out.name)


def test_a_failure_while_writing_keeps_the_old_file(media, small_pipe, tmp_path, monkeypatch):
    """Any exception half-way (here: the encoder fails after a few frames) leaves the old file as it was."""
    from streamavatar.data import video_io

    real = video_io.write_mp4

    def failing(path, frames, *a, **kw):
        def some():
            for i, f in enumerate(frames):
                if i == 20:
                    raise RuntimeError("disk on fire")
                yield f
        return real(path, some(), *a, **kw)

    monkeypatch.setattr(video_io, "write_mp4", failing)
    out = tmp_path / "old.mp4"
    out.write_bytes(OLD)
    with pytest.raises(RuntimeError, match="disk on fire"):
        offline.generate_video(small_pipe, media / "ref.png", out, talk_audio=media / "talk.wav", seconds=1.5,
                               progress=False)
    assert out.read_bytes() == OLD and not _leftovers(tmp_path, out.name)


@pytest.fixture(scope="module")
def bad_audio(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_audio")
    sf.write(str(d / "nine.wav"), np.zeros((1600, 9), np.float32), 16000, subtype="PCM_16")
    late = np.zeros(48000, np.float32)
    late[40000] = np.nan  # 2.5 s: in the sixth block, not the first
    sf.write(str(d / "late_nan.wav"), late, 16000, subtype="FLOAT")
    loud = np.zeros(16000, np.float32)
    loud[8000] = 300.0
    sf.write(str(d / "loud.wav"), loud, 16000, subtype="FLOAT")
    with sf.SoundFile(str(d / "two_hours.wav"), "w", 8000, 1, subtype="PCM_U8") as f:  # 58 MB, written in pieces
        for _ in range(73):
            f.write(np.zeros(8000 * 100, np.int16))
    return d


def test_every_input_is_checked_before_the_model_loads(media, bad_audio, tmp_path):
    """A model folder that does not exist is the last thing checked: every bad input must be named first."""
    ref, talk = str(media / "ref.png"), str(media / "talk.wav")
    out = str(tmp_path / "o.mp4")
    base = ["generate", "--image", ref, "--out", out, "--model", str(tmp_path / "no_model_here")]
    cases = [
        (["--talk-audio", str(bad_audio / "nine.wav")], ["9 channels", "at most 8", "-ac 1"]),
        (["--talk-audio", str(bad_audio / "late_nan.wav")], ["NaN", "sample 40000", "2.500 s", "re-export"]),
        (["--listen-audio", str(bad_audio / "loud.wav")], ["outside [-1, 1]", "sample 8000"]),
        (["--talk-audio", str(bad_audio / "two_hours.wav")], ["7300 s", "--seconds 3600"]),
        (["--talk-audio", talk, "--seconds", "1e6"], ["--seconds", "at most 3600"]),
        (["--talk-audio", talk, "--seconds", "1e9"], ["--seconds", "at most 3600"]),
        (["--talk-audio", talk, "--seed", str(2**64)], ["--seed", "2**64-1"]),
        (["--talk-audio", talk, "--seed", "9" * 5000], ["--seed", "5000 digits"]),
        (["--talk-audio", talk, "--seed", "-1"], ["--seed"]),
        (["--talk-audio", talk, "--seed", "x"], ["--seed", "whole number"]),
        (["--talk-audio", talk, "--out", "/proc/x.mp4"], ["cannot write /proc/x.mp4"]),  # a folder no one can write
    ]
    for extra, words in cases:
        r = subprocess.run([sys.executable, "-m", "streamavatar", *base, *extra], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2, (extra[:3], r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "no_model_here" not in r.stderr, (extra[:3], r.stderr)
        assert "nonfinite" not in r.stderr  # the Python API's option; the CLI has none
        for w in words:
            assert w in r.stderr, (w, r.stderr)
    # With valid input, the model is what is refused: the checks above really ran before loading it.
    r = subprocess.run([sys.executable, "-m", "streamavatar", *base, "--talk-audio", talk, "--seconds", "3600"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no_model_here" in r.stderr, r.stderr
    assert not Path(out).exists()


def test_cli_limit_matches_the_engine_limit():
    assert streaming_cli.MAX_SECONDS == offline.MAX_SECONDS


def test_length_is_exact_to_the_frame():
    assert [offline.frames_for_seconds(s) for s in (0.04, 0.5, 0.48, 0.9, 1.0, 0.001)] == [1, 13, 12, 23, 25, 1]
