"""Audio front-end: PCM → talk/listen per-latent-frame windows for the DiT (see docs/audio.md).

``io`` (rates, channels, dtypes, resampling) · ``encoders`` (whisper-tiny, wav2vec2, mel) · ``windows`` (time
alignment and per-latent-frame windows) · ``vad`` (masks) · ``frontend`` (offline) · ``streaming`` (incremental).
The projector that turns windows into DiT tokens is :mod:`streamavatar.models.audio_projector`.
"""

from streamavatar.audio.config import BACKENDS, DEFAULT_BACKEND, AudioConfig, audio_preset
from streamavatar.audio.frontend import AudioFrontend
from streamavatar.audio.io import ENCODER_SAMPLE_RATE, StreamingResampler, load_pcm
from streamavatar.audio.streaming import StreamingAudioEncoder, TalkListenAudio
from streamavatar.audio.windows import ChunkGeometry, FrameWindows, latent_video_frames, latent_window_video_frames

__all__ = [
    "AudioConfig", "AudioFrontend", "BACKENDS", "ChunkGeometry", "DEFAULT_BACKEND", "ENCODER_SAMPLE_RATE",
    "FrameWindows", "StreamingAudioEncoder", "StreamingResampler", "TalkListenAudio", "audio_preset",
    "latent_video_frames", "latent_window_video_frames", "load_pcm",
]
