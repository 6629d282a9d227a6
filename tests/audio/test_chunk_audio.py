"""Per-step audio windows equal the offline front-end's windows when the audio is queued ahead."""

from __future__ import annotations

import numpy as np
import torch

from streamavatar.audio import AudioConfig, AudioFrontend
from streamavatar.audio.streaming import AudioQueue, ChunkAudioEncoder


def test_queue_take_peek_cap():
    q = AudioQueue(max_samples=10)
    q.push(np.arange(6, dtype=np.float32))
    q.push(np.arange(6, 12, dtype=np.float32))
    assert len(q) == 10 and q.peek(3).tolist() == [2, 3, 4]
    assert q.take(4).tolist() == [2, 3, 4, 5] and len(q) == 6
    assert q.take(100).tolist() == [6, 7, 8, 9, 10, 11] and len(q) == 0 and q.peek(5).size == 0


def test_windows_equal_offline(speechlike):
    fe = AudioFrontend(AudioConfig(backend="mel"))
    talk, listen = speechlike[:30000], speechlike[::-1][:20000].copy()
    enc = ChunkAudioEncoder(fe, listen_backlog_s=None)
    enc.talk.queue.push(talk)
    enc.listen.queue.push(listen)
    chunks = [enc.next_chunk() for _ in range(4)]
    # Offline, video frame 0 owns the clip's first 640 samples; in a session frame 0 is the reference (silence).
    pad = np.zeros(640, np.float32)
    off_t = fe.encode(np.concatenate([pad, talk]), 16000, num_latent_frames=12)
    off_l = fe.encode(np.concatenate([pad, listen]), 16000, num_latent_frames=12)
    for c, ca in enumerate(chunks):
        for got, off in ((ca.talk, off_t), (ca.listen, off_l)):
            want = off.latent_slice(3 * c, 3)
            assert got.first_latent_frame == want.first_latent_frame
            torch.testing.assert_close(got.windows, want.windows, rtol=0, atol=1e-5)
            torch.testing.assert_close(got.slot_mask, want.slot_mask, rtol=0, atol=0)
            torch.testing.assert_close(got.video_mask, want.video_mask, rtol=0, atol=0)
    assert chunks[0].talk.activity().max() > 0  # the comparison includes voiced frames


def test_missing_lookahead_is_silence(speechlike):
    """Audio pushed just in time (no look-ahead queued) reads the look-ahead as silence."""
    fe = AudioFrontend(AudioConfig(backend="mel"))
    n = fe.geometry.chunk_samples
    enc = ChunkAudioEncoder(fe)
    enc.talk.queue.push(speechlike[:n])
    got = enc.next_chunk().talk
    want = fe.encode(np.concatenate([np.zeros(640, np.float32), speechlike[:n]]), 16000,
                     num_latent_frames=3)
    torch.testing.assert_close(got.windows, want.windows, rtol=0, atol=1e-5)


def test_silent_window_cache_is_exact(speechlike):
    """A silent voice reuses cached features: identical to encoding the zeros."""
    fe = AudioFrontend(AudioConfig(backend="mel"))
    enc = ChunkAudioEncoder(fe)
    enc.talk.queue.push(speechlike[:9000])
    for _ in range(3):
        enc.next_chunk()
    assert enc._silence is not None
    direct = fe.encode_windows(torch.zeros(1, fe.geometry.context))[0]
    torch.testing.assert_close(enc._silence, direct, rtol=0, atol=0)


def test_pieces_at_another_rate_join_seamlessly(speechlike):
    """20 ms pushes at 48 kHz queue exactly the samples of one whole push (no seams at piece boundaries)."""
    from streamavatar.audio.io import load_pcm

    fe = AudioFrontend(AudioConfig(backend="mel"))
    x48 = np.repeat(speechlike[:16000], 3)
    enc = ChunkAudioEncoder(fe)
    for piece in np.split(x48, 50):
        enc.talk.push(piece, 48000, "error")
    got = np.concatenate([enc.next_chunk().talk_audio for _ in range(3)])
    want = load_pcm(x48, 48000)
    np.testing.assert_allclose(got[:want.size], want, atol=1e-6)
