"""The generator interface the server depends on, and how a model is loaded for serving.

The server never touches model internals: it only needs an object that makes per-session streams
(ARCHITECTURE.md §5): ``pipe.session(reference_image)`` returns a session that accepts the agent's voice
(``push_talk_audio``) and the user's voice (``push_listen_audio``), produces one chunk per ``step()``
(12 frames = 0.48 s at 25 fps plus the exact agent audio those frames were generated from) and drops
queued agent audio on ``interrupt()``; its audio queues (:mod:`streamavatar.audio.queue`) are the only place
the server's audio is held. These are written as :class:`typing.Protocol` classes so the
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
    """One endless avatar stream with its own state (KV cache, audio queues).

    The stream's agent-voice queue is the only copy of the agent's samples: the server pushes them on arrival
    and bounds each step with ``talk_until``. Samples are numbered in push order (at the pipeline's
    ``sample_rate``): ``talk_index`` is the next a step consumes, ``talk_end`` one past the last queued. The
    audio calls and properties may come from another thread than ``step``."""

    talk_index: int
    talk_end: int
    queued_talk_samples: int
    lookahead_samples: int
    listen_samples_dropped: int

    def push_talk_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Queue agent voice (mono int16, or float in [-1, 1], any rate)."""

    def push_listen_audio(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Queue user voice (as :meth:`push_talk_audio`); the oldest is dropped beyond the session's backlog."""

    def step(self, talk_until: int | None = None) -> ChunkLike:
        """Generate the next chunk of ``CHUNK_VIDEO_FRAMES`` frames from one chunk of queued audio; agent samples
        at or past index ``talk_until`` are neither consumed nor looked ahead at."""

    def interrupt(self) -> None:
        """Drop queued agent audio; the stream continues listening."""

    def skip_talk_audio(self, n: int, until: int | None = None) -> int:
        """Drop up to ``n`` queued agent samples after the last step's look-ahead, none at or past ``until``;
        returns how many (later indices move back by that many)."""

    def clear_listen_audio(self) -> None:
        """Drop queued user audio."""


@runtime_checkable
class AvatarPipeline(Protocol):
    """A loaded model that makes sessions. ``frame_size`` is ``(H, W)``; ``sample_rate`` is the rate of the
    audio returned in chunks and of the positions of a session's agent queue (a multiple of ``VIDEO_FPS`` so
    every frame owns whole samples).

    Optional: ``warmup()``, one throwaway chunk; the server calls it before it reports ready (the engine's runs
    once per pipeline)."""

    name: str
    frame_size: tuple[int, int]
    sample_rate: int

    def session(self, reference_image: np.ndarray, *, listen_backlog_s: float | None = ...) -> AvatarSession:
        """Start a stream for one reference image (HxWx3 uint8) that keeps at most ``listen_backlog_s`` of
        user audio queued."""


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
