"""The pipecat frame processor in a real pipecat pipeline (skipped when pipecat-ai is not installed)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("pipecat")

from pipecat.frames.frames import (  # noqa: E402
    InputAudioRawFrame,
    InterruptionFrame,
    OutputImageRawFrame,
    SpeechOutputAudioRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.tests.utils import SleepFrame, run_test  # noqa: E402

from streamavatar.serve import frame_code  # noqa: E402
from streamavatar.serve.fake_generator import FakeAvatarPipeline  # noqa: E402
from streamavatar.serve.pipecat_service import StreamAvatarVideoService  # noqa: E402
from tests.serve.helpers import ramp  # noqa: E402


def _tts(start: int, seconds: float) -> list:
    pcm = ramp(start, int(16000 * seconds))
    return [TTSAudioRawFrame(audio=part.tobytes(), sample_rate=16000, num_channels=1)
            for part in np.array_split(pcm, max(1, int(seconds * 10)))]


def test_pipecat_service_emits_images_and_retimed_speech_and_obeys_interruptions():
    service = StreamAvatarVideoService(FakeAvatarPipeline(64, 64), np.full((64, 64, 3), 90, np.uint8))
    noise = (np.random.default_rng(0).standard_normal(16000) * 8000).astype(np.int16)
    frames = [SleepFrame(0.3), TTSStartedFrame(), *_tts(0, 1.0), TTSStoppedFrame(), SleepFrame(2.0),
              InputAudioRawFrame(audio=noise.tobytes(), sample_rate=16000, num_channels=1), SleepFrame(1.0),
              TTSStartedFrame(), *_tts(16000, 4.0), TTSStoppedFrame(), SleepFrame(1.5), InterruptionFrame(),
              SleepFrame(1.5)]
    down, _ = asyncio.run(run_test(service, frames_to_send=frames))
    images = [f for f in down if isinstance(f, OutputImageRawFrame)]
    assert len(images) > 100 and images[0].size == (64, 64)
    codes = [frame_code.read_code(np.frombuffer(f.image, np.uint8).reshape(64, 64, 3), frame_code.ROW_FRAME)
             for f in images]
    cut = next(i for i, f in enumerate(down) if isinstance(f, InterruptionFrame))
    before = sum(1 for f in down[:cut] if isinstance(f, OutputImageRawFrame))
    assert codes[:before] == list(range(before))  # a steady stream of frames, in order
    assert all(b > a for a, b in zip(codes, codes[1:], strict=False))  # the interrupt only skips unsent frames
    # every speech audio frame follows the image that was generated from it
    speech = 0
    for prev, cur in zip(down, down[1:], strict=False):
        if isinstance(cur, SpeechOutputAudioRawFrame):
            assert isinstance(prev, OutputImageRawFrame)
            img = np.frombuffer(prev.image, np.uint8).reshape(64, 64, 3)
            talk = frame_code.read_code(img, frame_code.ROW_TALK_SAMPLE)
            assert int(np.frombuffer(cur.audio, "<i2")[0]) % 32768 == (talk - 1) % 32768
            speech += 1
    assert speech >= 25 + 20  # the whole first utterance and part of the second
    assert not any(isinstance(f, TTSAudioRawFrame) for f in down)  # raw TTS audio is replaced, not doubled
    # nothing of the agent's voice after the interruption
    assert not any(isinstance(f, SpeechOutputAudioRawFrame) for f in down[cut + 1:])
    assert speech < 25 + 4 * 25  # the interrupted utterance did not play in full
