"""The offline audio front-end: a whole clip of PCM → post-masked per-latent-frame windows.

:class:`AudioFrontend` owns one encoder and the chunk geometry. :meth:`AudioFrontend.encode` computes every
chunk's window exactly the way :class:`~streamavatar.audio.streaming.ChunkAudioEncoder` does when the audio
arrives live (same encoder windows, same pooling, same causal VAD), so features used in training match the
ones seen at inference.
"""

from __future__ import annotations

import numpy as np
import torch

from streamavatar import constants as K
from streamavatar.audio.config import AudioConfig
from streamavatar.audio.encoders import AudioEncoder, build_encoder, native_frame_times
from streamavatar.audio.io import ENCODER_SAMPLE_RATE, load_pcm
from streamavatar.audio.vad import build_vad
from streamavatar.audio.windows import (
    SAMPLES_PER_VIDEO_FRAME,
    ChunkGeometry,
    FrameWindows,
    gather_windows,
    latent_frames_for_video_frames,
    pooling_matrix,
)
from streamavatar.errors import UserInputError


def check_mask(mask, what: str = "mask") -> np.ndarray:
    """A user-given per-video-frame mask as float32, or a :class:`UserInputError`."""
    m = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)
    if m.ndim != 1 or m.dtype.kind not in "biuf":
        raise UserInputError(f"{what} must be a 1-D array with one value per video frame, got shape {m.shape} "
                             f"and dtype {m.dtype}")
    m = m.astype(np.float32)
    if not np.isfinite(m).all() or (m < 0).any() or (m > 1).any():
        raise UserInputError(f"{what} values must lie in [0, 1]")
    return m


class AudioFrontend:
    """Encoder + chunk geometry; see the module docstring."""

    def __init__(self, config: AudioConfig | None = None, encoder: AudioEncoder | None = None) -> None:
        self.config = config or AudioConfig()
        self.encoder = encoder if encoder is not None else build_encoder(self.config)
        context = round(self.config.context_s * K.VIDEO_FPS) * SAMPLES_PER_VIDEO_FRAME
        lookahead = round(self.config.lookahead_ms * ENCODER_SAMPLE_RATE / 1000.0)
        if context < self.encoder.min_window:
            raise UserInputError(f"context_s {self.config.context_s} is shorter than the {self.encoder.name} "
                                 f"encoder's minimum window ({self.encoder.min_window} samples)")
        self.geometry = ChunkGeometry(self.config.chunk_latent_frames, self.config.window_radius, lookahead, context)
        self._pool: torch.Tensor | None = None
        #: Where the encoder runs; windows are moved here before the encoder sees them (see :meth:`to`).
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> AudioFrontend:
        """Run the encoder on ``device``: its weights move there, and so do the windows it is given."""
        self.device = torch.device(device)
        self.encoder.to(self.device)
        self._pool = None
        return self

    # --- facts ------------------------------------------------------------------------------------------
    @staticmethod
    def first_chunk_seconds(config: AudioConfig) -> float:
        """Audio a stream needs before its first chunk is ready (frame 0, one chunk, the look-ahead)."""
        g = ChunkGeometry(config.chunk_latent_frames, config.window_radius,
                          round(config.lookahead_ms * ENCODER_SAMPLE_RATE / 1000.0), 10**9)
        return g.window_end(0) / ENCODER_SAMPLE_RATE

    @property
    def num_layers(self) -> int:
        return self.encoder.num_layers

    @property
    def feature_dim(self) -> int:
        return self.encoder.feature_dim

    @property
    def window_size(self) -> int:
        return self.geometry.window_size

    @property
    def lookahead_s(self) -> float:
        """Audio needed past a chunk's last sample before its windows can be computed (at 16 kHz input)."""
        return self.geometry.lookahead / ENCODER_SAMPLE_RATE

    def describe(self) -> dict:
        g = self.geometry
        return {**self.encoder.describe(), "context_s": g.context / ENCODER_SAMPLE_RATE,
                "lookahead_ms": 1000.0 * self.lookahead_s, "window_radius": g.radius, "window_size": g.window_size,
                "chunk_latent_frames": g.chunk_latent_frames, "vad": self.config.vad}

    # --- the per-chunk computation shared with streaming ------------------------------------------------
    def encode_windows(self, waves: torch.Tensor) -> torch.Tensor:
        """Chunk encoder windows ``[n, context]`` → the chunks' video-frame features ``[n, V, L, D]`` (on the
        front-end's :attr:`device`)."""
        native = self.encoder(waves.to(self.device))
        if self._pool is None or self._pool.shape[1] != native.shape[1]:
            pool = pooling_matrix(self.geometry, native_frame_times(self.encoder, native.shape[1]))
            self._pool = pool.to(self.device)
        return torch.einsum("vt,ntld->nvld", self._pool, native)

    def chunk_masks(self, frame_mask: np.ndarray, chunks: range, start_frame: int = 0) -> torch.Tensor:
        """``[n, V]`` mask rows for ``chunks`` from a mask indexed by video frame of the source audio.

        Chunk frames are relative to ``start_frame`` of the source; source frames < 0 or beyond the mask get 0.
        """
        g = self.geometry
        idx = start_frame + np.array([g.first_video_frame(c) for c in chunks])[:, None] + np.arange(g.frames_per_chunk)
        valid = (idx >= 0) & (idx < len(frame_mask))
        rows = np.where(valid, frame_mask[np.clip(idx, 0, max(len(frame_mask) - 1, 0))], 0.0)
        return torch.from_numpy(rows.astype(np.float32))

    # --- offline ------------------------------------------------------------------------------------------
    def encode(self, pcm, sample_rate: float, *, num_latent_frames: int | None = None, mask=None,
               start_frame: int = 0) -> FrameWindows:
        """Windows for latent frames ``1 … F`` of a clip whose video frame 0 is ``start_frame`` of the audio.

        ``num_latent_frames`` defaults to enough frames to cover the audio; audio missing at the end counts as
        silence. ``mask`` (one value in [0, 1] per video frame of ``pcm``, from its first sample) replaces the
        VAD; frames it does not cover get 0. With ``start_frame = 0`` (a stream's start) the audio before frame
        0 is silence, as a session's :class:`~streamavatar.audio.streaming.ChunkAudioEncoder` sees it; with
        ``start_frame > 0`` (a training crop out of a longer recording) the earlier audio is real context, as
        in a stream that has been running for a while.
        """
        wave = load_pcm(pcm, sample_rate, self.config.nonfinite)
        g = self.geometry
        n_source = -(-len(wave) // SAMPLES_PER_VIDEO_FRAME)
        if not isinstance(start_frame, int | np.integer) or not 0 <= start_frame < n_source:
            raise UserInputError(f"start_frame must be a video frame inside the audio (0 … {n_source - 1}), "
                                 f"got {start_frame!r}")
        origin = int(start_frame) * SAMPLES_PER_VIDEO_FRAME
        if num_latent_frames is None:
            num_latent_frames = latent_frames_for_video_frames(n_source - start_frame)
        if num_latent_frames <= 0:
            raise UserInputError(f"need at least one non-reference latent frame of audio (more than "
                                 f"{SAMPLES_PER_VIDEO_FRAME / ENCODER_SAMPLE_RATE:g} s), got "
                                 f"{len(wave) / ENCODER_SAMPLE_RATE:g} s and num_latent_frames={num_latent_frames}")
        n_chunks = g.num_chunks(num_latent_frames)
        # the source audio on absolute sample positions [a0, a1), zeros outside the recording
        a0, a1 = min(0, origin + g.window_start(0)), origin + g.window_end(n_chunks - 1)
        timeline = np.zeros(a1 - a0, dtype=np.float32)
        timeline[-a0: -a0 + min(len(wave), a1)] = wave[: a1]
        if mask is None:
            last_frame = start_frame + g.first_video_frame(n_chunks - 1) + g.frames_per_chunk
            stream = timeline[-a0: -a0 + last_frame * SAMPLES_PER_VIDEO_FRAME]
            frame_mask = build_vad(self.config.vad).process(stream.reshape(last_frame, SAMPLES_PER_VIDEO_FRAME))
        else:
            frame_mask = check_mask(mask)
        parts = []
        for b0 in range(0, n_chunks, self.config.batch_windows):
            chunks = range(b0, min(n_chunks, b0 + self.config.batch_windows))
            waves = np.stack([timeline[origin + g.window_start(c) - a0: origin + g.window_end(c) - a0]
                              for c in chunks])
            feats = self.encode_windows(torch.from_numpy(waves))
            masks = self.chunk_masks(frame_mask, chunks, start_frame)
            parts += [gather_windows(feats[i], masks[i], g, c) for i, c in enumerate(chunks)]
        return FrameWindows.concat(parts).truncate(num_latent_frames)
