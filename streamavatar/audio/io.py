"""PCM in: validation, integer/float conversion, downmixing and a streaming resampler to 16 kHz.

Rules (documented in ``docs/audio.md``):

* Sample rates from 8 kHz to 192 kHz (integers) are accepted; anything else is a :class:`UserInputError`.
* 1-D arrays are mono. 2-D arrays are ``[samples, channels]`` (soundfile convention) unless the first axis has
  at most 8 entries and the second more, which is read as ``[channels, samples]`` (torch convention). Channels
  are averaged.
* int16 / int32 / uint8 are scaled to [-1, 1]; float arrays must already be in that range (a peak above
  :data:`MAX_FLOAT_PEAK` means int16 data passed as float, and is refused rather than silently mis-scaled).
* NaN / ±inf samples raise by default (``nonfinite="error"``); ``nonfinite="zero"`` replaces them with 0.
* Resampling is a windowed-sinc polyphase filter that runs incrementally: pushing audio in any pieces gives
  exactly the samples that one push of the whole signal gives. Its look-ahead is
  :attr:`StreamingResampler.delay_input_samples` input samples (at most about 1 ms).
"""

from __future__ import annotations

import math
import sys
from typing import Literal

import numpy as np

from streamavatar.errors import UserInputError

#: Sample rate every audio encoder works at (Whisper and wav2vec 2.0 are both trained on 16 kHz audio).
ENCODER_SAMPLE_RATE = 16000
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
#: Float input louder than this is almost surely int16 data in a float array.
MAX_FLOAT_PEAK = 8.0
#: Most channels a 2-D array may have.
MAX_CHANNELS = 8

NonFinite = Literal["error", "zero"]


def check_sample_rate(sample_rate: float) -> int:
    """The sample rate as an int, or a :class:`UserInputError` if it is not an integer in 8 kHz…192 kHz."""
    try:
        rate = float(sample_rate)
    except (TypeError, ValueError):
        raise UserInputError(f"sample rate must be a number of Hz, got {sample_rate!r}") from None
    if not math.isfinite(rate) or rate != int(rate):
        raise UserInputError(f"sample rate must be a whole number of Hz, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise UserInputError(
            f"sample rate must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {int(rate)} Hz")
    return int(rate)


def to_mono_float32(pcm, nonfinite: NonFinite = "error") -> np.ndarray:
    """Mono float32 samples in [-1, 1] from a numpy array / torch tensor / sequence (see the module rules)."""
    torch = sys.modules.get("torch")  # a tensor implies torch is imported; the server imports this without it
    if torch is not None and isinstance(pcm, torch.Tensor):
        pcm = pcm.detach().cpu().numpy()
    x = np.asarray(pcm)
    if x.dtype == object or x.dtype.kind not in "iuf":
        raise UserInputError(f"audio samples must be int16, int32, uint8 or float, got dtype {x.dtype}")
    if x.ndim == 2:
        if x.shape[0] <= MAX_CHANNELS < x.shape[1]:
            x = x.T
        if x.shape[1] > MAX_CHANNELS:
            raise UserInputError(
                f"2-D audio must be [samples, channels] or [channels, samples] with at most {MAX_CHANNELS} "
                f"channels, got shape {tuple(x.shape)}")
    elif x.ndim != 1:
        raise UserInputError(f"audio must be 1-D (mono) or 2-D (multi-channel), got shape {tuple(x.shape)}")
    if x.size == 0:
        raise UserInputError("empty audio: expected at least one sample")
    if x.dtype == np.int16:
        y = x.astype(np.float32) / 32768.0
    elif x.dtype == np.int32:
        y = (x.astype(np.float64) / 2147483648.0).astype(np.float32)
    elif x.dtype == np.uint8:
        y = (x.astype(np.float32) - 128.0) / 128.0
    elif x.dtype.kind in "iu":
        raise UserInputError(f"integer audio must be int16, int32 or uint8, got {x.dtype}")
    else:
        y = x.astype(np.float32)
        finite = np.isfinite(y)
        if not finite.all():
            if nonfinite == "error":
                bad = np.flatnonzero(~finite.reshape(-1))
                raise UserInputError(
                    f"audio has {bad.size} NaN/inf sample(s) (first at flat index {int(bad[0])}); expected finite "
                    "samples (or choose nonfinite='zero' to replace them with silence)")
            if nonfinite != "zero":
                raise UserInputError(f"nonfinite must be 'error' or 'zero', got {nonfinite!r}")
            y = np.where(finite, y, np.float32(0.0))
        peak = float(np.abs(y).max())
        if peak > MAX_FLOAT_PEAK:
            raise UserInputError(
                f"float audio must lie in [-1, 1]; got a peak of {peak:g} (int16 samples? pass an int16 array or "
                "divide by 32768)")
    if y.ndim == 2:
        y = y.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(y, dtype=np.float32)


def _kaiser_sinc_bank(up: int, down: int, sr_in: int, zero_crossings: int, beta: float
                      ) -> tuple[np.ndarray, int]:
    """Polyphase bank ``[up, 2·half]`` of a windowed-sinc low-pass and its half width in input samples."""
    cutoff = 0.5 * min(1.0, up / down) * 0.95  # in cycles per input sample; 5 % transition band below Nyquist
    half = int(math.ceil(zero_crossings / (2.0 * cutoff)))
    k = np.arange(-half + 1, half + 1, dtype=np.float64)  # tap m = i + k for output at input position i + p/up
    phase = np.arange(up, dtype=np.float64)[:, None] / up
    d = phase - k[None, :]  # distance from the output instant to each tap, in input samples
    window = np.i0(beta * np.sqrt(np.clip(1.0 - (d / half) ** 2, 0.0, None))) / np.i0(beta)
    bank = 2 * cutoff * np.sinc(2 * cutoff * d) * window
    bank /= bank.sum(axis=1, keepdims=True)  # unit DC gain for every phase
    return bank, half


class StreamingResampler:
    """Resamples a mono stream from ``sample_rate`` to :data:`ENCODER_SAMPLE_RATE`, incrementally.

    Output sample ``n`` is the band-limited value at time ``n / 16000`` s; it is emitted as soon as every input
    sample it depends on has arrived. Audio before the first sample counts as silence. :meth:`flush` ends the
    stream (zeros after the last sample) and emits the rest, ``ceil(N · 16000 / sample_rate)`` samples in all.
    """

    def __init__(self, sample_rate: int, zero_crossings: int = 16, beta: float = 8.0) -> None:
        self.sample_rate = check_sample_rate(sample_rate)
        g = math.gcd(self.sample_rate, ENCODER_SAMPLE_RATE)
        self.up, self.down = ENCODER_SAMPLE_RATE // g, self.sample_rate // g
        self.identity = self.up == self.down
        if self.identity:
            self._bank, self._half = np.ones((1, 1)), 0
        else:
            self._bank, self._half = _kaiser_sinc_bank(self.up, self.down, self.sample_rate, zero_crossings, beta)
            self._bank = self._bank.astype(np.float32)
        self._offsets = np.arange(-self._half + 1, self._half + 1)
        self._buffer = np.zeros(self._half, dtype=np.float32)  # silence before the stream
        self._buffer_start = -self._half  # input index of _buffer[0]
        self._received = 0
        self._next_out = 0
        self._flushed = False

    @property
    def delay_input_samples(self) -> int:
        """How many input samples past an output instant are needed before it can be emitted."""
        return self._half

    @property
    def delay_s(self) -> float:
        return self._half / self.sample_rate

    @property
    def emitted(self) -> int:
        """Output samples emitted so far."""
        return self._next_out

    def push(self, x: np.ndarray) -> np.ndarray:
        """Feed mono float32 input; returns the newly computable 16 kHz samples (possibly none)."""
        if self._flushed:
            raise UserInputError("this audio stream has ended (flush was called); start a new stream")
        x = np.asarray(x, dtype=np.float32)
        self._buffer = np.concatenate([self._buffer, x])
        self._received += x.size
        if self.identity:
            out, self._buffer = self._buffer, np.zeros(0, dtype=np.float32)
            self._buffer_start = self._received
            self._next_out = self._received
            return out
        last_usable = self._received - 1 - self._half  # largest i whose taps are all received
        n_max = ((last_usable + 1) * self.up - 1) // self.down if last_usable >= 0 else -1
        return self._emit_until(n_max + 1)

    def flush(self) -> np.ndarray:
        """End of stream: pad with silence and emit the remaining output samples."""
        if self._flushed:
            return np.zeros(0, dtype=np.float32)
        total = -(-self._received * self.up // self.down)
        if self.identity:
            self._flushed = True
            return np.zeros(0, dtype=np.float32)
        self._buffer = np.concatenate([self._buffer, np.zeros(self._half, dtype=np.float32)])
        out = self._emit_until(total)
        self._flushed = True
        return out

    def _emit_until(self, n_end: int) -> np.ndarray:
        n = np.arange(self._next_out, max(n_end, self._next_out), dtype=np.int64)
        if n.size == 0:
            return np.zeros(0, dtype=np.float32)
        pos = n * self.down
        i, p = pos // self.up, pos % self.up
        idx = i[:, None] + self._offsets[None, :] - self._buffer_start
        out = np.einsum("nk,nk->n", self._buffer[idx], self._bank[p])
        self._next_out = int(n[-1]) + 1
        keep_from = (self._next_out * self.down) // self.up - self._half + 1  # first tap of the next output
        drop = max(0, keep_from - self._buffer_start)
        self._buffer = self._buffer[drop:]
        self._buffer_start += drop
        return out.astype(np.float32)


def resample_to_encoder_rate(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Whole-signal resampling to 16 kHz: exactly what :class:`StreamingResampler` gives for one push + flush."""
    r = StreamingResampler(sample_rate)
    return np.concatenate([r.push(x), r.flush()])


def load_pcm(pcm, sample_rate: float, nonfinite: NonFinite = "error") -> np.ndarray:
    """Validate, convert, downmix and resample user audio to mono float32 at 16 kHz."""
    rate = check_sample_rate(sample_rate)
    return resample_to_encoder_rate(to_mono_float32(pcm, nonfinite), rate)
