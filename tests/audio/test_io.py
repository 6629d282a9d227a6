"""PCM conversion rules and the streaming resampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamavatar.audio.io import (
    StreamingResampler,
    check_sample_rate,
    load_pcm,
    resample_to_encoder_rate,
    to_mono_float32,
)
from streamavatar.errors import UserInputError


def test_integer_formats_are_scaled():
    assert to_mono_float32(np.array([-32768, 0, 16384], dtype=np.int16)).tolist() == [-1.0, 0.0, 0.5]
    assert to_mono_float32(np.array([0, 128, 192], dtype=np.uint8)).tolist() == [-1.0, 0.0, 0.5]
    assert to_mono_float32(np.array([-2**31, 2**30], dtype=np.int32)).tolist() == [-1.0, 0.5]
    assert to_mono_float32(torch.tensor([0.25, -0.5])).tolist() == [0.25, -0.5]


def test_stereo_is_downmixed_in_either_layout():
    left, right = np.linspace(-1, 1, 100), np.zeros(100)
    want = (left + right) / 2
    np.testing.assert_allclose(to_mono_float32(np.stack([left, right], axis=1)), want, atol=1e-7)  # [N, C]
    np.testing.assert_allclose(to_mono_float32(np.stack([left, right], axis=0)), want, atol=1e-7)  # [C, N]


@pytest.mark.parametrize("bad", [np.zeros(0), np.zeros((4, 4, 4)), np.zeros((100, 20)),
                                 np.array([1 + 1j]), np.array([True, False]), np.array([0.0, 300.0]),
                                 np.array([1, 2], dtype=np.int64)])
def test_bad_arrays_raise(bad):
    with pytest.raises(UserInputError):
        to_mono_float32(bad)


def test_nonfinite_policy():
    x = np.array([0.1, np.nan, np.inf, -0.2], dtype=np.float32)
    with pytest.raises(UserInputError, match="NaN/inf"):
        to_mono_float32(x)
    assert to_mono_float32(x, nonfinite="zero").tolist() == pytest.approx([0.1, 0.0, 0.0, -0.2])


@pytest.mark.parametrize("rate", [7999, 192001, 22050.5, float("nan"), "fast", 0, -16000])
def test_bad_sample_rates(rate):
    with pytest.raises(UserInputError, match="sample rate"):
        check_sample_rate(rate)


def test_sample_rate_limits_accepted():
    assert check_sample_rate(8000) == 8000 and check_sample_rate(192000.0) == 192000


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampler_reproduces_a_sine(rate):
    t = np.arange(rate) / rate
    y = resample_to_encoder_rate((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), rate)
    assert len(y) == 16000
    ref = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    assert np.abs(y - ref)[100:-100].max() < 1e-3


def test_resampler_removes_content_above_nyquist():
    rate = 48000
    t = np.arange(rate) / rate
    y = resample_to_encoder_rate((0.5 * np.sin(2 * np.pi * 12000 * t)).astype(np.float32), rate)
    assert np.abs(y[200:-200]).max() < 1e-2  # 12 kHz cannot exist at 16 kHz; no alias at 4 kHz


@pytest.mark.parametrize("rate", [16000, 44100, 11025])
def test_resampler_pieces_equal_whole(rate):
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal(rate)).astype(np.float32)
    whole = resample_to_encoder_rate(x, rate)
    r, parts, i = StreamingResampler(rate), [], 0
    while i < len(x):
        n = int(rng.integers(1, 2000))
        parts.append(r.push(x[i: i + n]))
        i += n
        # nothing is emitted before all its input taps have arrived
        if r.emitted:
            assert (r.emitted - 1) * rate // 16000 + r.delay_input_samples <= i - 1
    parts.append(r.flush())
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert r.delay_s <= 0.0025


def test_push_after_flush_raises():
    r = StreamingResampler(44100)
    r.push(np.zeros(100, dtype=np.float32))
    r.flush()
    with pytest.raises(UserInputError, match="ended"):
        r.push(np.zeros(10, dtype=np.float32))


def test_load_pcm_int16_stereo_44k():
    x = (np.random.default_rng(0).standard_normal((44100, 2)) * 3000).astype(np.int16)
    y = load_pcm(x, 44100)
    assert y.dtype == np.float32 and y.shape == (16000,)
