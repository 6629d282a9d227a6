"""Incoming PCM: parsing, validation and streaming resampling to the generator's sample rate."""

from __future__ import annotations

import av
import numpy as np

from streamavatar.errors import UserInputError

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 96000


def check_sample_rate(rate: object) -> int:
    """A declared input sample rate, validated (integer Hz in [8000, 96000])."""
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise UserInputError(f"sample_rate must be an integer between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, "
                             f"got {rate!r}")
    return rate


def pcm16_from_bytes(data: bytes) -> np.ndarray:
    """Little-endian PCM16 mono bytes as int16 samples."""
    if len(data) % 2:
        raise UserInputError(f"PCM16 audio must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


class StreamResampler:
    """Stateful int16 mono resampler (libswresample via PyAV), so any chunk size resamples seamlessly.
    Equal rates pass samples through unchanged."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._resampler = None if in_rate == out_rate else av.AudioResampler(format="s16", layout="mono",
                                                                             rate=out_rate)
        self._pts = 0

    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Resample the next piece of the stream."""
        pcm = np.asarray(pcm, np.int16).reshape(-1)
        if self._resampler is None or pcm.size == 0:
            return pcm.copy()
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.in_rate
        frame.pts = self._pts
        self._pts += pcm.size
        return self._collect(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        """Samples still inside the resampler at the end of a stream."""
        if self._resampler is None:
            return np.zeros(0, np.int16)
        out = self._collect(self._resampler.resample(None))
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=self.out_rate)
        self._pts = 0
        return out

    @staticmethod
    def _collect(frames: list) -> np.ndarray:
        if not frames:
            return np.zeros(0, np.int16)
        return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.int16)


def frame_to_mono_int16(frame: av.AudioFrame, resampler: av.AudioResampler) -> np.ndarray:
    """A decoded WebRTC audio frame (any layout and rate) as int16 mono at the resampler's rate."""
    out = resampler.resample(frame)
    if not out:
        return np.zeros(0, np.int16)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).astype(np.int16)
