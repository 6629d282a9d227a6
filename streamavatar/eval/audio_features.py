"""Log-mel features of the avatar's voice, aligned to video frames (numpy only; used by the sync model).

Frame ``t`` of a 25 fps video covers samples ``[t * 640, (t + 1) * 640)`` at 16 kHz; with a 10 ms hop the
features have :data:`MELS_PER_FRAME` = 4 mel frames per video frame, centred on those samples.
"""

from __future__ import annotations

import numpy as np

from streamavatar.errors import UserInputError

SAMPLE_RATE = 16000
HOP = 160          # 10 ms
WINDOW = 400       # 25 ms
N_FFT = 512
N_MELS = 40
MELS_PER_FRAME = 4  # 40 ms video frame / 10 ms hop


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   fmin: float = 60.0, fmax: float = 7600.0) -> np.ndarray:
    """Triangular HTK-style mel filters ``[n_mels, n_fft // 2 + 1]``."""
    hz = _mel_to_hz(np.linspace(_hz_to_mel(np.array(fmin)), _hz_to_mel(np.array(fmax)), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    fb = np.zeros((n_mels, len(bins)), np.float32)
    for m in range(n_mels):
        lo, c, hi = hz[m], hz[m + 1], hz[m + 2]
        up = (bins - lo) / max(c - lo, 1e-6)
        down = (hi - bins) / max(hi - c, 1e-6)
        fb[m] = np.clip(np.minimum(up, down), 0, None)
    return fb


def log_mel(audio: np.ndarray, n_frames: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Log-mel spectrogram ``[n_frames * MELS_PER_FRAME, N_MELS]`` of mono 16 kHz ``audio`` for ``n_frames``
    video frames (zero-padded or cut to exactly ``n_frames * 640`` samples)."""
    if sample_rate != SAMPLE_RATE:
        raise UserInputError(f"audio must be {SAMPLE_RATE} Hz, got {sample_rate} Hz")
    audio = np.asarray(audio, np.float32).ravel()
    n = n_frames * MELS_PER_FRAME
    need = n * HOP
    audio = np.pad(audio[:need], (0, max(0, need - len(audio))))
    padded = np.pad(audio, (WINDOW // 2, WINDOW // 2))
    starts = np.arange(n) * HOP + HOP // 2  # window centred on each 10 ms hop's centre
    idx = starts[:, None] + np.arange(WINDOW)[None, :]
    frames = padded[idx] * np.hanning(WINDOW).astype(np.float32)
    spec = np.abs(np.fft.rfft(frames, N_FFT, axis=1)) ** 2
    mel = spec @ mel_filterbank().T
    return np.log(mel + 1e-6).astype(np.float32)
