"""Without the [real] extra, data prepare and eval real-sync end with one line naming the extra."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from streamavatar.data.real_fixtures import write_video

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is not None,
                                reason="mediapipe is installed: this checks the message when it is not")


def test_prepare_names_the_extra(tmp_path):
    (tmp_path / "v").mkdir()
    write_video(tmp_path / "v" / "a.mp4", np.zeros((10, 64, 64, 3), np.uint8), 25, [np.zeros(6400, np.float32)])
    sf.write(tmp_path / "a.wav", np.zeros(6400, np.float32), 16000)
    for args in (["data", "prepare", "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "o")],
                 ["eval", "real-sync", str(tmp_path / "v" / "a.mp4"), "--talk-audio", str(tmp_path / "a.wav")]):
        r = subprocess.run([sys.executable, "-m", "streamavatar", *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert '.[real]' in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
