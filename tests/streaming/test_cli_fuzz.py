"""Property tests (hypothesis) over ``streamavatar generate``'s inputs: flags and files of every kind end in
exit status 2 with one line on stderr, never a traceback; and every bad input is named before the model would
load (the model folder given does not exist, so an input error must come first). Runs in-process through the CLI
entry point, few examples, no deadline."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamavatar.cli import main

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


def _seconds_valid(text: str) -> bool:
    try:
        v = float(text)
    except ValueError:
        return False
    return math.isfinite(v) and 0 < v <= 3600


def _seed_valid(text: str) -> bool:
    digits = text.strip()
    if digits.isdigit() and len(digits) > 20:
        return False
    try:
        return 0 <= int(digits) <= 2**64 - 1
    except ValueError:
        return False


number_text = st.one_of(st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                        st.integers(-10**30, 10**30).map(str), st.sampled_from(["1e6", "3600", "3600.0001", "0.001",
                                                                                   "1_0", " 7 ", "9" * 5000, ""]))
AUDIO_KINDS = ["good", "nan", "inf", "loud", "nine_channels", "empty", "garbage", "missing", "rate_4k", "stereo"]
IMAGE_KINDS = ["good", "garbage", "missing", "tiny", "truncated"]


def _write_audio(path, kind: str, at: int) -> None:
    x = (0.1 * np.sin(np.arange(12000) / 7)).astype(np.float32)
    if kind in ("nan", "inf", "loud"):
        x[at % x.size] = {"nan": np.nan, "inf": np.inf, "loud": 1e4}[kind]
        sf.write(str(path), x, 16000, subtype="FLOAT")
    elif kind == "nine_channels":
        sf.write(str(path), np.stack([x] * 9, axis=1), 16000, subtype="PCM_16")
    elif kind == "empty":
        sf.write(str(path), np.zeros(0, np.float32), 16000)
    elif kind == "garbage":
        path.write_bytes(bytes(np.random.default_rng(at).integers(0, 256, 300, dtype=np.uint8)))
    elif kind == "rate_4k":
        sf.write(str(path), x[:4000], 4000, subtype="PCM_16")
    elif kind == "stereo":
        sf.write(str(path), np.stack([x, -x], axis=1), 44100, subtype="PCM_16")
    elif kind == "good":
        sf.write(str(path), x, 16000, subtype="PCM_16")


def _write_image(path, kind: str, good: bytes) -> None:
    if kind == "good":
        path.write_bytes(good)
    elif kind == "garbage":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    elif kind == "tiny":
        from PIL import Image
        Image.new("RGB", (8, 8)).save(path)
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])


@FUZZ
@given(seconds=st.none() | number_text, seed=st.none() | number_text, audio=st.sampled_from(AUDIO_KINDS),
       listen=st.sampled_from([None, *AUDIO_KINDS]), image=st.sampled_from(IMAGE_KINDS), at=st.integers(0, 20000))
def test_generate_inputs_end_in_one_line_errors_named_before_the_model(media, tmp_path, capsys, seconds, seed, audio,
                                                                       listen, image, at):
    img, talk, lis = tmp_path / "img.png", tmp_path / "talk.wav", tmp_path / "listen.wav"
    for p in (img, talk, lis):
        p.unlink(missing_ok=True)
    _write_image(img, image, (media / "ref.png").read_bytes())
    _write_audio(talk, audio, at)
    args = ["generate", "--image", str(img), "--talk-audio", str(talk), "--out", str(tmp_path / "o.mp4"),
            "--model", str(tmp_path / "no_model_here")]
    if listen is not None:
        _write_audio(lis, listen, at + 1)
        args += ["--listen-audio", str(lis)]
    if seconds is not None:
        args.append(f"--seconds={seconds}")
    if seed is not None:
        args.append(f"--seed={seed}")
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse
        rc = exc.code
    err = capsys.readouterr().err
    proc = subprocess.CompletedProcess(args, rc, "", err)
    assert rc == 2, proc
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    inputs_valid = (image == "good" and audio in ("good", "stereo") and listen in (None, "good", "stereo")
                    and (seconds is None or _seconds_valid(seconds)) and (seed is None or _seed_valid(seed)))
    assert ("no_model_here" in err) == inputs_valid, err  # the model is the last thing checked


@pytest.mark.parametrize("text", ["12", " 7 ", "1_0", "٣"])
def test_seed_oracle_matches_the_parser(text):
    from streamavatar.cli_args import seed_int

    try:
        seed_int()(text)
        parsed = True
    except Exception:  # argparse.ArgumentTypeError
        parsed = False
    assert parsed == _seed_valid(text)
