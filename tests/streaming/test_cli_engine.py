"""``streamavatar generate`` / ``demo`` / ``bench stream`` as a user runs them, and the bad-input catalog.

Every bad input must end with exit status 2 and one line on stderr (never a traceback or a hang); inputs
that are merely unusual (grayscale/RGBA images, stereo/8-bit/8 kHz/48 kHz/silent/very long audio) must work.
Runs use the small random model and at most two chunks, except one short demo with the real default model.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from streamavatar import constants as K
from streamavatar.cli import main
from streamavatar.data.video_io import probe_video, read_audio


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamavatar", *args], capture_output=True, text=True,
                          timeout=timeout)


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width × height`` (the pixel data is a stub): decoding it would need GBs."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bad(tmp_path_factory, media):
    d = tmp_path_factory.mktemp("bad")
    (d / "corrupt.png").write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    good = (media / "ref.png").read_bytes()
    (d / "truncated.png").write_bytes(good[: len(good) // 2])
    png_header_only(d / "huge.png", 20000, 20000)
    sf.write(str(d / "empty.wav"), np.zeros(0, np.float32), 16000)
    nan = np.zeros(8000, np.float32)
    nan[100] = np.nan
    sf.write(str(d / "nan.wav"), nan, 16000, subtype="FLOAT")
    sf.write(str(d / "rate4k.wav"), np.zeros(4000, np.float32), 4000, subtype="PCM_16")
    (d / "notaudio.wav").write_text("hello")
    return d


def _one_line_exit_2(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr


def test_bad_input_catalog_cli(media, bad, small_model_dir, tmp_path, capsys):
    ref, talk = str(media / "ref.png"), str(media / "talk.wav")
    model = ["--model", str(small_model_dir)]
    out = str(tmp_path / "o.mp4")
    (tmp_path / "adir.mp4").mkdir()
    cases = [
        (["--image", str(bad / "missing.png"), "--talk-audio", talk, "--out", out], "does not exist"),
        (["--image", str(bad / "corrupt.png"), "--talk-audio", talk, "--out", out], "cannot read reference image"),
        (["--image", str(bad / "truncated.png"), "--talk-audio", talk, "--out", out], "cannot read reference image"),
        (["--image", str(bad / "huge.png"), "--talk-audio", talk, "--out", out], "too large"),
        (["--image", ref, "--talk-audio", str(bad / "empty.wav"), "--out", out], "empty"),
        (["--image", ref, "--talk-audio", str(bad / "notaudio.wav"), "--out", out], "cannot read talk audio"),
        (["--image", ref, "--talk-audio", str(bad / "rate4k.wav"), "--out", out], "4000"),
        (["--image", ref, "--talk-audio", str(bad / "nan.wav"), "--out", out, *model], "NaN"),
        (["--image", ref, "--talk-audio", talk, "--out", "/proc/version/x.mp4"], "cannot write"),
        (["--image", ref, "--talk-audio", talk, "--out", str(tmp_path / "adir.mp4")], "directory"),
        (["--image", ref, "--talk-audio", talk, "--out", str(tmp_path / "nofolder" / "x.mp4")], "does not exist"),
        (["--image", ref, "--talk-audio", talk, "--out", str(tmp_path / "x.avi")], ".mp4"),
        (["--image", ref, "--talk-audio", talk, "--out", out, "--model", str(tmp_path / "nomodel")], "not found"),
        (["--image", ref, "--talk-audio", talk, "--out", out, "--model", str(media)], "not a model folder"),
        (["--image", ref, "--talk-audio", talk, "--out", out, "--seconds", "0"], "--seconds"),
        (["--image", ref, "--talk-audio", talk, "--out", out, "--seconds", "nan"], "--seconds"),
        (["--image", ref, "--out", out], "--talk-audio"),
    ]
    # A few by subprocess (exactly as a user runs them), the rest through the same entry point in-process.
    by_subprocess = {0, 3, 4, 8, 12}
    with ThreadPoolExecutor(3) as ex:
        futures = {i: ex.submit(run_cli, "generate", *cases[i][0], timeout=120) for i in by_subprocess}
        for i, (args, words) in enumerate(cases):
            if i in by_subprocess:
                continue
            try:
                rc = main(["generate", *args])
            except SystemExit as exc:  # argparse errors
                rc = exc.code
            err = capsys.readouterr().err
            _one_line_exit_2(subprocess.CompletedProcess(args, rc, "", err), words)
        for i, f in futures.items():
            _one_line_exit_2(f.result(), cases[i][1])
    assert not Path(out).exists()


def test_generate_mp4_durations_and_mix(media, small_model_dir, tmp_path):
    out = tmp_path / "both.mp4"
    r = run_cli("generate", "--image", str(media / "ref.png"), "--talk-audio", str(media / "talk.wav"),
                "--listen-audio", str(media / "listen.wav"), "--model", str(small_model_dir), "--seconds", "0.9",
                "--mix-listen", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["frames"] == 23 and summary["rtf"] > 0 and summary["ffd_s"] > 0  # 0.9 s: exact to the frame
    info = probe_video(out)
    assert info.n_frames == 23 and info.has_audio and (info.width, info.height) == (64, 64)
    audio = read_audio(out, 16000)
    assert abs(audio.size / 16000 - info.n_frames / K.VIDEO_FPS) <= 1 / K.VIDEO_FPS
    with __import__("av").open(str(out)) as c:
        assert {s.codec_context.name for s in c.streams} == {"h264", "aac"}


def test_unusual_inputs_work_in_process(media, small_model_dir, tmp_path, speechlike, capsys):
    """Handled correctly (not refused): grayscale and RGBA images; stereo, 8-bit, 8 kHz, 48 kHz, silent and very
    long audio; listen-only. Run in-process through the CLI entry point to keep the catalog fast."""
    gray, rgba = tmp_path / "gray.png", tmp_path / "rgba.png"
    Image.fromarray(np.full((70, 50), 90, np.uint8)).save(gray)
    Image.fromarray(np.zeros((64, 64, 4), np.uint8)).save(rgba)
    x = speechlike[:8000]
    files = {
        "stereo48k.wav": (np.stack([np.repeat(x, 3)] * 2, axis=1), 48000, "PCM_16"),
        "u8_8k.wav": (x[::2], 8000, "PCM_U8"),
        "silent.wav": (np.zeros(8000, np.float32), 16000, "PCM_16"),
        "long.wav": (np.zeros(8000 * 60 * 10, np.float32), 8000, "PCM_U8"),  # 10 minutes, read lazily
    }
    for name, (pcm, rate, subtype) in files.items():
        sf.write(str(tmp_path / name), pcm, rate, subtype=subtype)
    runs = [(gray, "stereo48k.wav", "talk"), (rgba, "u8_8k.wav", "talk"), (gray, "silent.wav", "talk"),
            (gray, "long.wav", "talk"), (rgba, "stereo48k.wav", "listen")]
    for i, (img, wav, voice) in enumerate(runs):
        out = tmp_path / f"u{i}.mp4"
        rc = main(["generate", "--image", str(img), f"--{voice}-audio", str(tmp_path / wav), "--seconds", "0.48",
                   "--model", str(small_model_dir), "--out", str(out), "--json"])
        assert rc == 0, (img, wav, capsys.readouterr().err)
        assert probe_video(out).n_frames == 12
    capsys.readouterr()


def test_demo_with_the_default_model(tmp_path):
    out = tmp_path / "demo.mp4"
    r = run_cli("demo", "--out", str(out), "--seconds", "0.48")
    assert r.returncode == 0, r.stderr
    assert "real-time factor" in r.stdout and "first-frame delay" in r.stdout and "distilled student" in r.stdout
    info = probe_video(out)
    assert info.n_frames == 12 and info.has_audio and (info.width, info.height) == (128, 128)


def test_bench_stream_engine(small_model_dir):
    from streamavatar.bench.stream import run_engine_benchmark

    out = run_engine_benchmark(1.0, model=str(small_model_dir), threads=1, progress=False)
    for key in ("rtf", "ffd_s", "chunk_ms", "peak_rss_mb", "resolution", "fps", "model"):
        assert key in out
    assert out["chunks"] == 3 and out["timed"] == ["audio", "dit", "vae"] and out["resolution"] == [64, 64]


def test_bad_audio_found_mid_stream_leaves_no_file(media, small_model_dir, tmp_path, speechlike, capsys):
    """NaN half-way through a file is found when that block is read: exit 2, one line, no partial mp4."""
    x = speechlike[:32000].copy()
    x[19200] = np.nan  # 1.2 s: read while feeding the second chunk
    sf.write(str(tmp_path / "late_nan.wav"), x, 16000, subtype="FLOAT")
    out = tmp_path / "late.mp4"
    rc = main(["generate", "--image", str(media / "ref.png"), "--talk-audio", str(tmp_path / "late_nan.wav"),
               "--seconds", "1.44", "--model", str(small_model_dir), "--out", str(out)])
    err = capsys.readouterr().err
    _one_line_exit_2(subprocess.CompletedProcess([], rc, "", err), "NaN")
    assert not out.exists()
