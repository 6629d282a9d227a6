"""Time alignment: audio samples ↔ 25 fps video frames ↔ latent frames ↔ chunks, and per-latent-frame windows.

Timeline (16 kHz, 640 samples per video frame): video frame ``v`` owns the audio ``[v·640, (v+1)·640)``.
Latent frame 0 is the reference (video frame 0, no audio tokens); latent frame ``k >= 1`` covers video frames
``4k−3 … 4k`` (the causal VAE's temporal stride 4). A latent frame's window is its 4 video frames widened by
``r`` (``window_radius``) frames on each side: ``4k−3−r … 4k+r`` (8 frames for the paper's r = 2).

Chunk ``c`` (0-based) holds latent frames ``C·c+1 … C·c+C`` (C = 3: 12 video frames, 0.48 s). Its features come
from one encoder pass over the window of ``context`` samples that ends ``lookahead`` samples after the chunk's
own audio; the 4C + 2r video-frame features it needs are pooled from that pass. The same pass is used offline
and streaming, which is why the two agree. Video frames before 0 are silence with mask 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from streamavatar import constants as K
from streamavatar.audio.io import ENCODER_SAMPLE_RATE
from streamavatar.errors import UserInputError

#: 16 kHz samples per 25 fps video frame.
SAMPLES_PER_VIDEO_FRAME = ENCODER_SAMPLE_RATE // K.VIDEO_FPS


def latent_video_frames(k: int) -> range:
    """Video frames covered by latent frame ``k`` (0 → the reference frame 0; k ≥ 1 → 4k−3 … 4k)."""
    if k < 0:
        raise UserInputError(f"latent frame index must be >= 0, got {k}")
    s = K.VAE_TEMPORAL_STRIDE
    return range(0, 1) if k == 0 else range(s * k - s + 1, s * k + 1)


def latent_window_video_frames(k: int, radius: int = K.AUDIO_WINDOW_RADIUS_FRAMES) -> range:
    """The video frames whose features make up latent frame ``k``'s window (its frames ± ``radius``)."""
    own = latent_video_frames(k)
    return range(own.start - radius, own.stop + radius)


def latent_frames_for_video_frames(num_video_frames: int) -> int:
    """Non-reference latent frames needed to cover ``num_video_frames`` (frame 0 being the reference)."""
    return max(0, math.ceil((num_video_frames - 1) / K.VAE_TEMPORAL_STRIDE))


@dataclass(frozen=True)
class ChunkGeometry:
    """Sample and frame positions of chunks; see the module docstring."""

    chunk_latent_frames: int = K.CHUNK_LATENT_FRAMES
    radius: int = K.AUDIO_WINDOW_RADIUS_FRAMES
    lookahead: int = K.AUDIO_WINDOW_RADIUS_FRAMES * SAMPLES_PER_VIDEO_FRAME
    context: int = 2 * ENCODER_SAMPLE_RATE

    def __post_init__(self) -> None:
        if self.lookahead < self.radius * SAMPLES_PER_VIDEO_FRAME:
            raise UserInputError(f"look-ahead {self.lookahead} samples cannot cover {self.radius} future frames")
        if self.frame_offset < 0:
            need = (self.context - self.frame_offset) / ENCODER_SAMPLE_RATE
            raise UserInputError(f"context of {self.context / ENCODER_SAMPLE_RATE:g} s is too short for a chunk "
                                 f"and its windows; expected at least {need:g} s")

    @property
    def video_frames_per_chunk(self) -> int:
        return self.chunk_latent_frames * K.VAE_TEMPORAL_STRIDE

    @property
    def frames_per_chunk(self) -> int:
        """Video-frame features a chunk needs (its frames plus ``radius`` on each side)."""
        return self.video_frames_per_chunk + 2 * self.radius

    @property
    def window_size(self) -> int:
        """Video frames in one latent frame's window."""
        return K.VAE_TEMPORAL_STRIDE + 2 * self.radius

    @property
    def chunk_samples(self) -> int:
        return self.video_frames_per_chunk * SAMPLES_PER_VIDEO_FRAME

    def latent_frames(self, c: int) -> range:
        return range(self.chunk_latent_frames * c + 1, self.chunk_latent_frames * (c + 1) + 1)

    def first_video_frame(self, c: int) -> int:
        """The first video frame whose feature chunk ``c`` needs (its first frame minus ``radius``)."""
        return self.video_frames_per_chunk * c + 1 - self.radius

    def chunk_audio(self, c: int) -> tuple[int, int]:
        """``[start, end)`` samples of the chunk's own video frames (what plays while it is shown)."""
        start = (self.video_frames_per_chunk * c + 1) * SAMPLES_PER_VIDEO_FRAME
        return start, start + self.chunk_samples

    def window_end(self, c: int) -> int:
        """Exclusive end sample of chunk ``c``'s encoder window: the chunk's audio end plus the look-ahead."""
        return self.chunk_audio(c)[1] + self.lookahead

    def window_start(self, c: int) -> int:
        return self.window_end(c) - self.context

    @property
    def frame_offset(self) -> int:
        """Start of the chunk's first needed video frame, in samples from its window start (same every chunk)."""
        return self.first_video_frame(0) * SAMPLES_PER_VIDEO_FRAME - self.window_start(0)

    def window_slots(self) -> np.ndarray:
        """``[C, window_size]`` indices into a chunk's ``frames_per_chunk`` features, one row per latent frame."""
        s = K.VAE_TEMPORAL_STRIDE
        return np.arange(self.chunk_latent_frames)[:, None] * s + np.arange(self.window_size)[None, :]

    def num_chunks(self, num_latent_frames: int) -> int:
        return math.ceil(num_latent_frames / self.chunk_latent_frames)


def pooling_matrix(geometry: ChunkGeometry, frame_times: np.ndarray) -> torch.Tensor:
    """``[frames_per_chunk, T]`` weights that turn native features into the chunk's video-frame features.

    Each video frame averages the native features linearly interpolated at ``n`` evenly spaced instants inside
    its 40 ms (``n`` = native frames per video frame, at least 1); instants outside the native frames take the
    nearest frame.
    """
    t = len(frame_times)
    if t == 0:
        raise UserInputError("the encoder produced no frames for this window; use a longer context")
    hop = float(frame_times[1] - frame_times[0]) if t > 1 else float(SAMPLES_PER_VIDEO_FRAME)
    n = max(1, round(SAMPLES_PER_VIDEO_FRAME / hop))
    starts = geometry.frame_offset + SAMPLES_PER_VIDEO_FRAME * np.arange(geometry.frames_per_chunk)
    instants = starts[:, None] + (np.arange(n)[None, :] + 0.5) * SAMPLES_PER_VIDEO_FRAME / n
    q = np.clip((instants - frame_times[0]) / hop, 0.0, t - 1.0)
    lo = np.floor(q).astype(np.int64)
    hi = np.minimum(lo + 1, t - 1)
    w = q - lo
    m = np.zeros((geometry.frames_per_chunk, t))
    rows = np.repeat(np.arange(geometry.frames_per_chunk), n)
    np.add.at(m, (rows, lo.reshape(-1)), (1 - w).reshape(-1) / n)
    np.add.at(m, (rows, hi.reshape(-1)), w.reshape(-1) / n)
    return torch.from_numpy(m).float()


def post_mask(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Multiply video-frame features ``[..., V, L, D]`` by a per-frame mask ``[..., V]`` (after the encoder)."""
    return features * mask.to(features.dtype)[..., None, None]


@dataclass
class FrameWindows:
    """Audio windows for consecutive non-reference latent frames of one stream.

    * ``windows``: ``[F, W, L, D]`` post-masked features (W = 4 + 2r video frames per latent frame).
    * ``slot_mask``: ``[F, W]`` the mask value that multiplied each window slot.
    * ``video_mask``: ``[4F]`` the mask of the latent frames' own video frames (frames ``4·first−3`` on).
    * ``first_latent_frame``: index of the first latent frame (1 for a clip, ``C·c+1`` for chunk ``c``).
    """

    windows: torch.Tensor
    slot_mask: torch.Tensor
    video_mask: torch.Tensor
    first_latent_frame: int

    @property
    def num_latent_frames(self) -> int:
        return self.windows.shape[0]

    def activity(self) -> torch.Tensor:
        """``[F]`` fraction of each latent frame's own video frames that the mask marks active."""
        return self.video_mask.reshape(-1, K.VAE_TEMPORAL_STRIDE).mean(dim=1)

    @staticmethod
    def concat(parts: list[FrameWindows]) -> FrameWindows:
        if not parts:
            raise UserInputError("nothing to concatenate: no audio windows were produced")
        for a, b in zip(parts, parts[1:], strict=False):
            if b.first_latent_frame != a.first_latent_frame + a.num_latent_frames:
                raise UserInputError("audio windows to concatenate are not consecutive")
        return FrameWindows(torch.cat([p.windows for p in parts]), torch.cat([p.slot_mask for p in parts]),
                            torch.cat([p.video_mask for p in parts]), parts[0].first_latent_frame)

    def latent_slice(self, start: int, count: int) -> FrameWindows:
        """``count`` latent frames from position ``start`` (0-based within these windows)."""
        if start < 0 or count <= 0 or start + count > self.num_latent_frames:
            raise UserInputError(f"latent slice [{start}, {start + count}) is outside these "
                                 f"{self.num_latent_frames} latent frames")
        s = K.VAE_TEMPORAL_STRIDE
        return FrameWindows(self.windows[start: start + count], self.slot_mask[start: start + count],
                            self.video_mask[start * s: (start + count) * s], self.first_latent_frame + start)

    def truncate(self, num_latent_frames: int) -> FrameWindows:
        f, s = num_latent_frames, K.VAE_TEMPORAL_STRIDE
        return FrameWindows(self.windows[:f], self.slot_mask[:f], self.video_mask[: f * s], self.first_latent_frame)


def gather_windows(features: torch.Tensor, mask: torch.Tensor, geometry: ChunkGeometry, chunk: int
                   ) -> FrameWindows:
    """Post-mask one chunk's video-frame features ``[V, L, D]`` with ``mask [V]`` and cut the latent windows
    (on the features' device)."""
    slots = torch.from_numpy(geometry.window_slots()).to(features.device)
    mask = mask.to(features.device)
    masked = post_mask(features, mask)
    r = geometry.radius
    own = mask[r: r + geometry.video_frames_per_chunk]
    return FrameWindows(masked[slots], mask[slots], own.clone(), geometry.latent_frames(chunk).start)
