"""Audio front-end: PCM → talk/listen per-latent-frame windows for the DiT (see docs/audio.md).

``io`` (rates, channels, dtypes, resampling) · ``queue`` (a voice's pushed samples) · ``encoders`` (whisper-tiny,
wav2vec2, mel) · ``windows`` (time alignment and per-latent-frame windows) · ``vad`` (masks) · ``frontend``
(offline) · ``streaming`` (the one incremental path: per-step talk/listen windows).
The projector that turns windows into DiT tokens is :mod:`streamavatar.models.audio_projector`.

Names are imported lazily so that ``streamavatar --help`` does not pay for transformers.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AudioConfig": "config", "audio_preset": "config", "BACKENDS": "config", "DEFAULT_BACKEND": "config",
    "AudioFrontend": "frontend",
    "ENCODER_SAMPLE_RATE": "io", "StreamingResampler": "io", "load_pcm": "io",
    "AudioQueue": "queue", "ChunkAudioEncoder": "streaming", "ChunkAudio": "streaming", "StreamTimeline": "streaming",
    "ChunkGeometry": "windows", "FrameWindows": "windows", "latent_video_frames": "windows",
    "latent_window_video_frames": "windows",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"streamavatar.audio.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'streamavatar.audio' has no attribute {name!r}")
