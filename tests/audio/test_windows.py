"""Time alignment: latent frame k sees exactly its video frames ± the window radius, offline and streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamavatar.audio.config import AudioConfig
from streamavatar.audio.encoders import AudioEncoder
from streamavatar.audio.frontend import AudioFrontend
from streamavatar.audio.streaming import ChunkAudioEncoder
from streamavatar.audio.windows import (
    ChunkGeometry,
    FrameWindows,
    latent_frames_for_video_frames,
    latent_video_frames,
    latent_window_video_frames,
    pooling_matrix,
)
from streamavatar.errors import UserInputError


class BlockMeanEncoder(AudioEncoder):
    """Feature of native frame j = mean of samples [320j, 320j + 320): makes time alignment visible."""

    name = "block-mean"
    hop = 320
    center_offset = 160.0
    num_layers = 1
    feature_dim = 1
    min_window = 320

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        n = wave.shape[1] // self.hop
        return wave[:, : n * self.hop].reshape(wave.shape[0], n, self.hop).mean(-1)[..., None, None]


def staircase(num_video_frames: int) -> np.ndarray:
    """Video frame v's 640 samples all equal (v + 1) / 1000."""
    return np.repeat((np.arange(num_video_frames) + 1) / 1000.0, 640).astype(np.float32)


def expected_value(frame: int, num_video_frames: int) -> float:
    return (frame + 1) / 1000.0 if 0 <= frame < num_video_frames else 0.0


def test_latent_frame_video_frames():
    assert list(latent_video_frames(0)) == [0]
    assert list(latent_video_frames(1)) == [1, 2, 3, 4]
    assert list(latent_video_frames(5)) == [17, 18, 19, 20]
    assert list(latent_window_video_frames(1)) == [-1, 0, 1, 2, 3, 4, 5, 6]
    assert list(latent_window_video_frames(2, radius=0)) == [5, 6, 7, 8]
    assert latent_frames_for_video_frames(1) == 0 and latent_frames_for_video_frames(2) == 1
    assert latent_frames_for_video_frames(13) == 3 and latent_frames_for_video_frames(14) == 4
    with pytest.raises(UserInputError):
        latent_video_frames(-1)


def test_chunk_geometry_defaults():
    g = ChunkGeometry()
    assert list(g.latent_frames(0)) == [1, 2, 3] and list(g.latent_frames(2)) == [7, 8, 9]
    assert g.chunk_audio(0) == (640, 640 + 7680)  # video frames 1..12 = 0.04 s … 0.52 s
    assert g.window_end(0) == 8320 + 1280  # + 80 ms look-ahead
    assert g.frames_per_chunk == 16 and g.window_size == 8
    assert g.window_slots().tolist()[1] == list(range(4, 12))
    with pytest.raises(UserInputError, match="too short"):
        ChunkGeometry(context=8000)


@pytest.mark.parametrize("hop,offset", [(320, 0.0), (320, 199.5), (160, 0.0)])
def test_pooling_rows_average_to_one(hop, offset):
    g = ChunkGeometry()
    times = offset + hop * np.arange(g.context // hop)
    m = pooling_matrix(g, times)
    assert m.shape == (16, len(times))
    torch.testing.assert_close(m.sum(1), torch.ones(16))
    # each video frame draws only on native frames near its own 40 ms
    centres = (m * torch.from_numpy(times).float()).sum(1)
    starts = g.frame_offset + 640 * np.arange(16)
    assert np.all(np.abs(centres.numpy() - (starts + 320)) <= hop)


@pytest.mark.parametrize("radius,lookahead_ms", [(2, 80.0), (0, 0.0), (1, 60.0)])
def test_offline_windows_see_exactly_their_frames(radius, lookahead_ms):
    cfg = AudioConfig(backend="mel", vad="none", window_radius=radius, lookahead_ms=lookahead_ms, context_s=1.0)
    fe = AudioFrontend(cfg, BlockMeanEncoder())
    n_video = 61  # latent frames 1..15
    out = fe.encode(staircase(n_video), 16000)
    assert out.num_latent_frames == 15 and out.windows.shape == (15, 4 + 2 * radius, 1, 1)
    for i in range(out.num_latent_frames):
        k = i + 1
        want = [expected_value(v, n_video) for v in latent_window_video_frames(k, radius)]
        np.testing.assert_allclose(out.windows[i, :, 0, 0].numpy(), want, atol=1e-6)
        # frames before the stream start are silence with mask 0
        assert out.slot_mask[i].tolist() == [1.0 if v >= 0 else 0.0 for v in latent_window_video_frames(k, radius)]


def test_streaming_windows_see_exactly_their_frames():
    """A session's audio starts at video frame 1 (frame 0 is the reference image, silence)."""
    fe = AudioFrontend(AudioConfig(backend="mel", vad="none"), BlockMeanEncoder())
    x = staircase(49)[640:]  # frames 1…48 of the staircase; frame 0 is the session's silence
    enc = ChunkAudioEncoder(fe, listen_backlog_s=None)
    parts = []
    for i in range(0, len(x), 1000):
        enc.talk.push(x[i: i + 1000], 16000)
        while enc.talk.ready():
            parts.append(enc.next_chunk().talk)
    while len(enc.talk.queue):
        parts.append(enc.next_chunk().talk)
    out = FrameWindows.concat(parts)
    assert out.num_latent_frames == 12
    for i in range(12):
        want = [0.0 if v == 0 else expected_value(v, 49) for v in latent_window_video_frames(i + 1)]
        np.testing.assert_allclose(out.windows[i, :, 0, 0].numpy(), want, atol=1e-6)


def test_windows_are_causal_beyond_the_lookahead():
    """Changing audio after chunk c's window end leaves chunk c's windows untouched."""
    fe = AudioFrontend(AudioConfig(backend="mel", vad="energy"))
    rng = np.random.default_rng(0)
    a = (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32)
    b = a.copy()
    end = fe.geometry.window_end(1)
    b[end:] = (0.1 * rng.standard_normal(len(b) - end)).astype(np.float32)
    wa, wb = fe.encode(a, 16000), fe.encode(b, 16000)
    torch.testing.assert_close(wa.windows[:6], wb.windows[:6], rtol=0, atol=0)
    assert not torch.equal(wa.windows[6:9], wb.windows[6:9])


def test_frame_windows_concat_checks_order():
    w = FrameWindows(torch.zeros(3, 8, 1, 1), torch.zeros(3, 8), torch.zeros(12), 1)
    w2 = FrameWindows(torch.zeros(3, 8, 1, 1), torch.zeros(3, 8), torch.zeros(12), 7)
    with pytest.raises(UserInputError, match="consecutive"):
        FrameWindows.concat([w, w2])
    assert w.activity().shape == (3,)


def test_start_frame_uses_earlier_audio_as_context():
    fe = AudioFrontend(AudioConfig(backend="mel", vad="none", context_s=1.0), BlockMeanEncoder())
    n_video, s = 61, 20
    out = fe.encode(staircase(n_video), 16000, start_frame=s, num_latent_frames=6)
    for i in range(6):
        frames = [s + v for v in latent_window_video_frames(i + 1)]
        np.testing.assert_allclose(out.windows[i, :, 0, 0].numpy(), [expected_value(v, n_video) for v in frames],
                                   atol=1e-6)
        assert out.slot_mask[i].tolist() == [1.0] * 8  # frames before the crop are real audio now
    with pytest.raises(UserInputError, match="start_frame"):
        fe.encode(staircase(n_video), 16000, start_frame=61)


def test_crop_on_a_chunk_boundary_equals_a_slice_of_the_whole_clip():
    fe = AudioFrontend(AudioConfig(backend="mel", vad="energy", context_s=1.0))
    rng = np.random.default_rng(3)
    x = (0.2 * rng.standard_normal(16000 * 3)).astype(np.float32)
    x[8000:16000] = 0
    whole = fe.encode(x, 16000)
    crop = fe.encode(x, 16000, start_frame=24, num_latent_frames=6)  # 24 = 2 chunks of 12 video frames
    part = whole.latent_slice(6, 6)
    torch.testing.assert_close(crop.windows, part.windows, rtol=0, atol=0)
    assert torch.equal(crop.slot_mask, part.slot_mask) and torch.equal(crop.video_mask, part.video_mask)
    with pytest.raises(UserInputError, match="outside"):
        whole.latent_slice(whole.num_latent_frames - 1, 2)
