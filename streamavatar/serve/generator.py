"""The generator interface the server depends on, and how a model is loaded for serving.

The server never touches model internals: it only needs an object that makes per-session streams
(ARCHITECTURE.md §5): ``pipe.session(reference_image)`` returns a session that accepts the agent's voice
(``push_talk_audio``) and the user's voice (``push_listen_audio``), produces one chunk per ``step()``
(12 frames = 0.48 s at 25 fps plus the exact agent audio those frames were generated from) and drops
queued agent audio on ``interrupt()``. These are written as :class:`typing.Protocol` classes so the
real model (:mod:`streamavatar.streaming`) and the test double in :mod:`streamavatar.serve.fake_generator` both fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from streamavatar import constants as K
from streamavatar.errors import UserInputError

AvatarState = Literal["talking", "listening", "idle"]
AVATAR_STATES: tuple[str, ...] = ("talking", "listening", "idle")


@dataclass(frozen=True)
class GeneratedChunk:
    """One generated chunk.

    ``frames``: uint8 ``[CHUNK_VIDEO_FRAMES, H, W, 3]``. ``audio``: float32 mono, exactly
    ``CHUNK_VIDEO_FRAMES * sample_rate / VIDEO_FPS`` samples: the agent audio these frames were generated
    from (zeros where the agent was silent). ``start_time``: seconds on the session's media clock of the
    first frame. ``talk_samples``: how many samples at the start of ``audio`` came from pushed agent
    audio (the rest is padding).
    """

    frames: np.ndarray
    audio: np.ndarray
    sample_rate: int
    start_time: float
    state: AvatarState
    talk_samples: int = 0


@runtime_checkable
class ChunkLike(Protocol):
    """What the server reads from a chunk (a :class:`GeneratedChunk` or the real model's chunk type)."""

    frames: np.ndarray
    audio: np.ndarray
    sample_rate: int
    start_time: float
    state: str


@runtime_checkable
class AvatarSession(Protocol):
    """One endless avatar stream with its own state (KV cache, audio queues)."""

    def push_talk_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Queue agent voice (float32 mono in [-1, 1], any rate)."""

    def push_listen_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Queue user voice (float32 mono in [-1, 1], any rate)."""

    def step(self) -> ChunkLike:
        """Generate the next chunk of ``CHUNK_VIDEO_FRAMES`` frames."""

    def interrupt(self) -> None:
        """Drop queued agent audio; the stream continues listening."""


@runtime_checkable
class AvatarPipeline(Protocol):
    """A loaded model that makes sessions. ``frame_size`` is ``(H, W)``; ``sample_rate`` is the rate of the
    audio returned in chunks (it must be a multiple of ``VIDEO_FPS`` so every frame owns whole samples).

    Optional: ``lookahead_samples`` (int, at ``sample_rate``), how much agent audio beyond a chunk its sessions
    read without consuming it (an audio encoder's look-ahead). The server then pushes that much of the same
    utterance ahead before each ``step()``; a session must still consume exactly one chunk per step."""

    name: str
    frame_size: tuple[int, int]
    sample_rate: int

    def session(self, reference_image: np.ndarray) -> AvatarSession:
        """Start a stream for one reference image (HxWx3 uint8)."""


def samples_per_frame(sample_rate: int) -> int:
    """Audio samples that belong to one video frame (640 at 16 kHz and 25 fps)."""
    if sample_rate % K.VIDEO_FPS:
        raise UserInputError(f"audio sample rate must be a multiple of {K.VIDEO_FPS} Hz, got {sample_rate}")
    return sample_rate // K.VIDEO_FPS


def validate_chunk(chunk: ChunkLike, frame_size: tuple[int, int]) -> None:
    """Raise ValueError when a generator returns a chunk that breaks the contract (shape, dtype, audio length)."""
    h, w = frame_size
    expected = (K.CHUNK_VIDEO_FRAMES, h, w, 3)
    if chunk.frames.shape != expected or chunk.frames.dtype != np.uint8:
        raise ValueError(f"generator returned frames {chunk.frames.shape} {chunk.frames.dtype}, "
                         f"expected {expected} uint8")
    n = K.CHUNK_VIDEO_FRAMES * samples_per_frame(chunk.sample_rate)
    if chunk.audio.ndim != 1 or chunk.audio.shape[0] != n:
        raise ValueError(f"generator returned audio of shape {chunk.audio.shape}, expected ({n},)")
    if chunk.state not in AVATAR_STATES:
        raise ValueError(f"generator returned state {chunk.state!r}, expected one of {AVATAR_STATES}")
