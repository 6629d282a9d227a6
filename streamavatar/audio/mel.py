"""Log-mel spectrograms at 16 kHz: Whisper's exact recipe and a plain variant for the ``mel`` backend.

Whisper (radford et al. 2022, ``whisper/audio.py``): 25 ms Hann window (400 samples), 10 ms hop (160), centred
frames with reflect padding, 80 Slaney mel bands up to 8 kHz, ``log10`` with a 1e-10 floor, the last frame
dropped, values clamped to at most 8 (decades) below the window's maximum, then ``(x + 4) / 4``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank

from streamavatar.audio.io import ENCODER_SAMPLE_RATE

N_FFT = 400
HOP = 160
N_MELS = 80
#: Whisper's dynamic range: log-mel values are clamped to at most this many decades below the window maximum.
WHISPER_DYNAMIC_RANGE_DECADES = 8.0


@lru_cache(maxsize=4)
def _filters(n_mels: int) -> torch.Tensor:
    fb = mel_filter_bank(num_frequency_bins=1 + N_FFT // 2, num_mel_filters=n_mels, min_frequency=0.0,
                         max_frequency=ENCODER_SAMPLE_RATE / 2, sampling_rate=ENCODER_SAMPLE_RATE, norm="slaney",
                         mel_scale="slaney")
    return torch.from_numpy(np.ascontiguousarray(fb.T)).float()  # [n_mels, n_freq]


def mel_power(wave: torch.Tensor, n_mels: int = N_MELS) -> torch.Tensor:
    """Mel power ``[B, n_mels, N // 160]`` of 16 kHz audio ``[B, N]``; frame ``m`` is centred on sample ``160·m``."""
    window = torch.hann_window(N_FFT, device=wave.device)
    stft = torch.stft(wave.float(), N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = (stft[..., :-1].abs() ** 2).contiguous()
    return _filters(n_mels).to(wave.device) @ power


def whisper_log_mel(wave: torch.Tensor) -> torch.Tensor:
    """Whisper's normalised log-mel ``[B, 80, N // 160]`` (per-window dynamic-range clamp, see module doc)."""
    log_spec = mel_power(wave).clamp(min=1e-10).log10()
    peak = log_spec.amax(dim=(1, 2), keepdim=True)
    log_spec = torch.maximum(log_spec, peak - WHISPER_DYNAMIC_RANGE_DECADES)
    return (log_spec + 4.0) / 4.0


def plain_log_mel(wave: torch.Tensor, n_mels: int = N_MELS) -> torch.Tensor:
    """Log-mel with a fixed floor (no per-window normalisation), scaled like Whisper's: ``(log10 + 4) / 4``."""
    return (mel_power(wave, n_mels).clamp(min=1e-10).log10() + 4.0) / 4.0
