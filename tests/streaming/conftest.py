"""Shared fixtures: a small random model folder (mel audio, 64×64) and its loaded pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from streamavatar.streaming.random_model import write_random_model


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory):
    return write_random_model(tmp_path_factory.mktemp("small_model"))


@pytest.fixture(scope="session")
def small_pipe(small_model_dir):
    from streamavatar.streaming.pipeline import load

    return load(str(small_model_dir), threads=1, warmup=False)


@pytest.fixture(scope="session")
def media(tmp_path_factory, speechlike):
    """Input files: a reference PNG and talk/listen WAVs."""
    from PIL import Image

    d = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (96, 80, 3), dtype=np.uint8)).save(d / "ref.png")
    sf.write(str(d / "talk.wav"), speechlike[:16000], 16000, subtype="PCM_16")
    sf.write(str(d / "listen.wav"), speechlike[16000:32000], 16000, subtype="PCM_16")
    return d
