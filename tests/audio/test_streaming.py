"""The one streaming path (arbitrary pushes, one chunk per step) equals the offline computation on the same
context; look-ahead; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamavatar.audio.bench import synthetic_voice
from streamavatar.audio.config import AudioConfig
from streamavatar.audio.frontend import AudioFrontend
from streamavatar.audio.io import load_pcm
from streamavatar.audio.streaming import ChunkAudioEncoder
from streamavatar.audio.windows import SAMPLES_PER_VIDEO_FRAME, FrameWindows
from streamavatar.errors import UserInputError


def voice_like(seconds: float, sample_rate: int = 16000, silence=()) -> np.ndarray:
    x = synthetic_voice(seconds, sample_rate)
    for a, b in silence:
        x[int(a * sample_rate): int(b * sample_rate)] = 0
    return x


def stream_all(fe: AudioFrontend, x: np.ndarray, rate: int, seed: int = 0, max_push: int = 4000):
    """Push ``x`` as agent audio in random pieces, stepping whenever a chunk and its look-ahead are queued, then
    step until the queue is empty; returns (chunks stepped before the last push, all talk windows)."""
    rng = np.random.default_rng(seed)
    enc = ChunkAudioEncoder(fe, listen_backlog_s=None)
    parts, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, max_push))
        enc.talk.push(x[i: i + n], rate)
        i += n
        while enc.talk.ready():
            parts.append(enc.next_chunk().talk)
    before = len(parts)
    while len(enc.talk.queue):
        parts.append(enc.next_chunk().talk)
    return before, FrameWindows.concat(parts)


def offline_session_windows(fe: AudioFrontend, pcm: np.ndarray, rate: int) -> FrameWindows:
    """The offline windows of audio pushed into a session: video frame 0 (the reference) is silence."""
    wave = load_pcm(pcm, rate, fe.config.nonfinite)
    return fe.encode(np.concatenate([np.zeros(SAMPLES_PER_VIDEO_FRAME, np.float32), wave]), 16000)


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
    offline = offline_session_windows(fe, stereo, rate)
    before, streamed = stream_all(fe, stereo, rate)
    assert before >= 3  # most chunks came out before the end of the stream
    n = min(streamed.num_latent_frames, offline.num_latent_frames)
    streamed, offline = streamed.truncate(n), offline.truncate(n)
    assert streamed.windows.shape == offline.windows.shape
    torch.testing.assert_close(streamed.windows, offline.windows, rtol=1e-4, atol=1e-4)
    assert torch.equal(streamed.slot_mask, offline.slot_mask) and torch.equal(streamed.video_mask, offline.video_mask)
    assert offline.video_mask.min() == 0 and offline.video_mask.max() == 1  # the VAD found both states


def test_lookahead_is_80ms_and_a_chunk_is_ready_exactly_then():
    fe = make_frontend("mel")
    enc = ChunkAudioEncoder(fe)
    need = fe.geometry.chunk_samples + fe.geometry.lookahead  # one chunk (0.48 s) + 80 ms
    assert enc.talk.lookahead_samples == 1280 and need == 8960
    x = voice_like(1.0)
    enc.talk.push(x[: need - 1], 16000)
    assert not enc.talk.ready()
    enc.talk.push(x[need - 1: need], 16000)
    assert enc.talk.ready() and not enc.ready()  # the user's voice has nothing queued
    w = enc.next_chunk().talk
    assert w.first_latent_frame == 1 and w.num_latent_frames == 3


def test_causal_preset_has_no_lookahead():
    fe = make_frontend("mel", window_radius=0, lookahead_ms=0.0)
    enc = ChunkAudioEncoder(fe)
    enc.talk.push(voice_like(0.48), 16000)  # exactly frames 1..12
    assert enc.talk.lookahead_samples == 0 and enc.talk.ready()
    assert enc.next_chunk().talk.windows.shape == (3, 4, 1, 80)


def test_memory_stays_bounded():
    fe = make_frontend("mel", context_s=1.0)
    enc = ChunkAudioEncoder(fe)
    x = voice_like(1.0)
    for _ in range(12):
        enc.talk.push(x, 16000)
        while enc.talk.ready():
            enc.next_chunk()
    g = fe.geometry
    assert enc.talk._tail.size <= g.context and len(enc.talk.queue) < g.chunk_samples + g.lookahead
    assert enc.talk._mask.size <= max(g.radius, 1)


def test_talk_and_listen_streams():
    fe = make_frontend("mel")
    enc = ChunkAudioEncoder(fe)
    enc.talk.push(voice_like(1.2), 16000)
    ca = enc.next_chunk()  # the user is silent: nothing queued reads as silence
    assert ca.talk.first_latent_frame == ca.listen.first_latent_frame == 1
    assert ca.talk.video_mask.sum() > 0 and ca.talk_samples == fe.geometry.chunk_samples
    assert ca.listen.video_mask.sum() == 0 and ca.listen.windows.abs().max() == 0  # silent user → masked out


@pytest.mark.parametrize("bad,rate,match", [
    (np.zeros(0, dtype=np.float32), 16000, "empty"),
    (np.array([0.0, np.nan], dtype=np.float32), 16000, "NaN"),
    (np.zeros(100, dtype=np.float32), 4000, "between 8000 and 192000"),
    (np.zeros(100, dtype=np.float32), 200000, "between 8000 and 192000"),
    (np.full(100, 1000.0, dtype=np.float32), 16000, "int16"),
])
def test_bad_pushes(bad, rate, match):
    enc = ChunkAudioEncoder(make_frontend("mel"))
    with pytest.raises(UserInputError, match=match):
        enc.talk.push(bad, rate)


def test_nan_policy_zero_streams_silence():
    fe = make_frontend("mel")
    enc = ChunkAudioEncoder(fe)
    enc.talk.push(np.full(16000, np.nan, dtype=np.float32), 16000, "zero")
    w = enc.next_chunk().talk
    ref = fe.encode(np.zeros(16000, dtype=np.float32), 16000, num_latent_frames=3)
    torch.testing.assert_close(w.windows, ref.windows)


def test_rate_change_is_seamless_and_a_bad_chunk_mask_is_refused():
    enc = ChunkAudioEncoder(make_frontend("mel"))
    enc.talk.push(voice_like(0.3), 16000)
    enc.talk.push(voice_like(0.3, 48000), 48000)  # a new rate: what the old resampler held back is released
    assert abs(len(enc.talk.queue) - 9600) <= 48
    with pytest.raises(UserInputError, match="16 values"):
        enc.next_chunk(talk_mask=np.ones(12))
    w = enc.next_chunk(talk_mask=np.ones(16)).talk
    assert float(w.video_mask.min()) == 1.0
