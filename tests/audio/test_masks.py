"""Talk/listen masks: applied after the encoder at exactly the masked video frames; VAD decisions."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from streamavatar.audio.bench import synthetic_voice
from streamavatar.audio.config import AudioConfig
from streamavatar.audio.frontend import AudioFrontend
from streamavatar.audio.vad import EnergyVAD, vad_mask
from streamavatar.audio.windows import latent_window_video_frames
from streamavatar.errors import UserInputError


def test_explicit_mask_zeroes_exactly_the_masked_frames_after_the_encoder(whisper_cache):
    fe = AudioFrontend(AudioConfig(backend="whisper-tiny", cache_dir=whisper_cache, vad="none", context_s=1.0))
    x = synthetic_voice(1.5)
    n_video = 38
    mask = np.ones(n_video, dtype=np.float32)
    mask[10:26] = 0.0
    full = fe.encode(x, 16000, mask=np.ones(n_video))
    masked = fe.encode(x, 16000, mask=mask)
    for i in range(full.num_latent_frames):
        frames = list(latent_window_video_frames(i + 1))
        want = [mask[v] if 0 <= v < n_video else 0.0 for v in frames]
        assert masked.slot_mask[i].tolist() == want
        # post-mask: unmasked slots keep the encoder's features unchanged; masked slots are exactly zero
        torch.testing.assert_close(masked.windows[i], full.windows[i] * torch.tensor(want)[:, None, None],
                                   rtol=0, atol=0)
    assert masked.video_mask.tolist() == mask[1: 1 + 4 * full.num_latent_frames].tolist() + \
        [0.0] * max(0, 4 * full.num_latent_frames + 1 - n_video)


def test_pre_mask_would_change_unmasked_frames(whisper_cache):
    """Why the mask goes after the encoder: silencing the waveform shifts features of frames it did not touch."""
    fe = AudioFrontend(AudioConfig(backend="whisper-tiny", cache_dir=whisper_cache, vad="none", context_s=1.0))
    x = synthetic_voice(1.0)
    silenced = x.copy()
    silenced[10 * 640: 18 * 640] = 0
    a, b = fe.encode(x, 16000), fe.encode(silenced, 16000)
    # latent frame 6 covers video frames 21..24 (window 19..26), all outside the silenced 10..17
    assert (a.windows[5] - b.windows[5]).abs().max() > 1e-3


def test_vad_mask_positions():
    sr = 16000
    x = np.zeros(int(2.4 * sr), dtype=np.float32)
    voice = synthetic_voice(2.4)
    for a, b in [(0.4, 1.0), (1.6, 2.0)]:
        x[int(a * sr): int(b * sr)] = voice[int(a * sr): int(b * sr)]
    m = vad_mask(x)
    assert len(m) == 60
    assert m[:10].sum() == 0  # silence before the first word (frames 0..9 end by 0.4 s)
    # the syllable envelope dips to zero 6x/s; hangover keeps whole words voiced
    assert m[10:25].mean() > 0.9 and m[40:50].mean() > 0.9
    assert m[25 + EnergyVAD().hangover_frames + 1: 40].sum() == 0  # released after the hangover
    assert m[50 + EnergyVAD().hangover_frames + 1:].sum() == 0


def test_vad_ignores_quiet_noise():
    noise = (10 ** (-65 / 20) * np.random.default_rng(0).standard_normal(32000)).astype(np.float32)
    assert vad_mask(noise).sum() == 0


def test_vad_masks_windows_at_vad_frames():
    fe = AudioFrontend(AudioConfig(backend="mel"))
    x = synthetic_voice(2.0)
    x[: int(0.8 * 16000)] = 0
    w = fe.encode(x, 16000)
    assert w.slot_mask.min() == 0 and w.slot_mask.max() == 1
    assert torch.all(w.windows[w.slot_mask == 0] == 0)
    assert torch.all(w.windows[w.slot_mask == 1].abs().sum(dim=(-1, -2)) > 0)
    assert w.activity()[0] == 0 and w.activity()[-1] == 1


@pytest.mark.parametrize("bad", [np.array([0.5, 2.0]), np.array([np.nan]), np.ones((3, 2)), np.array(["a"])])
def test_bad_explicit_masks(bad):
    fe = AudioFrontend(AudioConfig(backend="mel"))
    with pytest.raises(UserInputError, match="mask"):
        fe.encode(synthetic_voice(1.0), 16000, mask=bad)


@pytest.mark.skipif(importlib.util.find_spec("silero_vad") is None, reason="the optional [vad] extra (silero-vad)")
def test_silero_vad_offline_on_speech(tmp_path):
    from streamavatar.data.speech import SAMPLE_RATE, Voice, synthesize

    speech, sr = synthesize("the quick brown fox jumps over the lazy dog", Voice("en-us", "m1", 175, 50)), SAMPLE_RATE
    from streamavatar.audio.io import load_pcm

    x = np.concatenate([np.zeros(16000, dtype=np.float32), load_pcm(speech, sr), np.zeros(16000, np.float32)])
    m = vad_mask(x, "silero")
    n_speech = len(load_pcm(speech, sr)) // 640
    assert m[:20].sum() == 0  # first second is silence
    assert m[25: 25 + n_speech - 10].mean() > 0.7
    fe = AudioFrontend(AudioConfig(backend="mel", vad="silero"))
    offline = fe.encode(x, 16000)
    assert offline.video_mask.sum() > 0
    from streamavatar.audio.streaming import ChunkAudioEncoder

    offline = fe.encode(np.concatenate([np.zeros(640, np.float32), x]), 16000)  # a session's frame 0 is silence
    enc = ChunkAudioEncoder(fe, listen_backlog_s=None)
    parts = []
    for i in range(0, len(x), 3000):
        enc.talk.push(x[i: i + 3000], 16000)
        while enc.talk.ready():
            parts.append(enc.next_chunk().talk.video_mask)
    while len(enc.talk.queue):
        parts.append(enc.next_chunk().talk.video_mask)
    streamed = torch.cat(parts)
    n = min(len(streamed), len(offline.video_mask))
    assert torch.equal(streamed[:n], offline.video_mask[:n])  # the VAD state streams exactly
