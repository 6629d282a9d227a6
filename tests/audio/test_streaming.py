"""Streaming (arbitrary pushes) equals the offline computation on the same context; look-ahead; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamavatar.audio.bench import synthetic_voice
from streamavatar.audio.config import AudioConfig
from streamavatar.audio.frontend import AudioFrontend
from streamavatar.audio.streaming import StreamingAudioEncoder, TalkListenAudio
from streamavatar.audio.windows import FrameWindows
from streamavatar.errors import UserInputError


def voice_like(seconds: float, sample_rate: int = 16000, silence=()) -> np.ndarray:
    x = synthetic_voice(seconds, sample_rate)
    for a, b in silence:
        x[int(a * sample_rate): int(b * sample_rate)] = 0
    return x


def stream_all(fe: AudioFrontend, x: np.ndarray, rate: int, seed: int = 0, max_push: int = 4000):
    """Push ``x`` in random pieces; returns (chunks popped before flush, all chunks)."""
    rng = np.random.default_rng(seed)
    s = StreamingAudioEncoder(fe)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, max_push))
        s.push(x[i: i + n], rate)
        i += n
        while (w := s.pop()) is not None:
            parts.append(w)
    before = len(parts)
    s.flush()
    while (w := s.pop()) is not None:
        parts.append(w)
    return before, FrameWindows.concat(parts)


def make_frontend(backend: str, whisper_cache=None, w2v2=None, **kw) -> AudioFrontend:
    return AudioFrontend(AudioConfig(backend=backend, cache_dir=whisper_cache, wav2vec2_dir=w2v2, **kw))


@pytest.mark.parametrize("backend", ["mel", "wav2vec2", "whisper-tiny"])
def test_streaming_equals_offline(backend, request):
    cache = request.getfixturevalue("whisper_cache") if backend == "whisper-tiny" else None
    w2v2 = request.getfixturevalue("tiny_wav2vec2_dir") if backend == "wav2vec2" else None
    fe = make_frontend(backend, cache, w2v2, context_s=1.0)
    rate = 44100
    mono = voice_like(1.9, rate, silence=[(0.0, 0.3), (1.0, 1.3)])
    stereo = (np.stack([mono, 0.5 * mono], axis=1) * 32767).astype(np.int16)
    offline = fe.encode(stereo, rate)
    before, streamed = stream_all(fe, stereo, rate)
    assert before >= 3  # most chunks came out before the end of the stream
    streamed = streamed.truncate(offline.num_latent_frames)
    assert streamed.windows.shape == offline.windows.shape
    torch.testing.assert_close(streamed.windows, offline.windows, rtol=1e-4, atol=1e-4)
    assert torch.equal(streamed.slot_mask, offline.slot_mask) and torch.equal(streamed.video_mask, offline.video_mask)
    assert offline.video_mask.min() == 0 and offline.video_mask.max() == 1  # the VAD found both states


def test_lookahead_is_80ms_and_chunk_appears_exactly_then():
    fe = make_frontend("mel")
    s = StreamingAudioEncoder(fe)
    end = fe.geometry.window_end(0)  # 0.52 s of chunk audio (frames 0..12) + 80 ms
    assert end == 9600
    x = voice_like(1.0)
    s.push(x[: end - 1], 16000)
    assert s.ready() == 0 and s.pop() is None
    s.push(x[end - 1: end], 16000)
    assert s.ready() == 1
    assert s.lookahead_s == pytest.approx(0.080)
    w = s.pop()
    assert w.first_latent_frame == 1 and w.num_latent_frames == 3


def test_lookahead_includes_resampler_delay():
    s = StreamingAudioEncoder(make_frontend("mel"))
    s.push(np.zeros(441, dtype=np.float32), 44100)
    assert 0.080 < s.lookahead_s < 0.0825


def test_causal_preset_has_no_lookahead():
    fe = make_frontend("mel", window_radius=0, lookahead_ms=0.0)
    s = StreamingAudioEncoder(fe)
    s.push(voice_like(0.52), 16000)  # exactly frames 0..12
    assert s.ready() == 1 and s.pop().windows.shape == (3, 4, 1, 80)


def test_memory_stays_bounded():
    fe = make_frontend("mel", context_s=1.0)
    s = StreamingAudioEncoder(fe)
    x = voice_like(1.0)
    for _ in range(12):
        s.push(x, 16000)
        while s.pop() is not None:
            pass
    assert len(s._buffer) <= fe.geometry.context + fe.geometry.chunk_samples + 16000
    assert len(s._mask) <= 2 * fe.geometry.frames_per_chunk + 25


def test_talk_listen_streams():
    fe = make_frontend("mel")
    tl = TalkListenAudio(fe)
    tl.push_talk(voice_like(1.2), 16000)
    assert tl.pop() is None  # no user audio yet
    tl.push_listen_silence(1.2)
    talk, listen = tl.pop()
    assert talk.first_latent_frame == listen.first_latent_frame == 1
    assert talk.video_mask.sum() > 0
    assert listen.video_mask.sum() == 0 and listen.windows.abs().max() == 0  # silent user → masked out


@pytest.mark.parametrize("bad,rate,match", [
    (np.zeros(0, dtype=np.float32), 16000, "empty"),
    (np.array([0.0, np.nan], dtype=np.float32), 16000, "NaN"),
    (np.zeros(100, dtype=np.float32), 4000, "between 8000 and 192000"),
    (np.zeros(100, dtype=np.float32), 200000, "between 8000 and 192000"),
    (np.full(100, 1000.0, dtype=np.float32), 16000, "int16"),
])
def test_bad_pushes(bad, rate, match):
    s = StreamingAudioEncoder(make_frontend("mel"))
    with pytest.raises(UserInputError, match=match):
        s.push(bad, rate)


def test_nan_policy_zero_streams_silence():
    fe = make_frontend("mel", nonfinite="zero")
    s = StreamingAudioEncoder(fe)
    s.push(np.full(16000, np.nan, dtype=np.float32), 16000)
    w = s.pop()
    ref = fe.encode(np.zeros(16000, dtype=np.float32), 16000, num_latent_frames=3)
    torch.testing.assert_close(w.windows, ref.windows)


def test_rate_change_push_after_flush_and_bad_chunk_mask():
    s = StreamingAudioEncoder(make_frontend("mel"))
    s.push(voice_like(1.0), 16000)
    with pytest.raises(UserInputError, match="changed"):
        s.push(np.zeros(10, dtype=np.float32), 48000)
    with pytest.raises(UserInputError, match="16 values"):
        s.pop(mask=np.ones(12))
    s.flush()
    with pytest.raises(UserInputError, match="ended"):
        s.push(np.zeros(10, dtype=np.float32), 16000)
