import numpy as np

from streamavatar.eval.audio_features import MELS_PER_FRAME, N_MELS, log_mel
from streamavatar.eval.distribution import fid_proxy, fvd_proxy, window_descriptors
from streamavatar.eval.stats import frechet_distance_features, linear_slope, pearson_r


def test_pearson_and_slope():
    x = np.arange(10.0)
    assert abs(pearson_r(x, 2 * x + 1) - 1) < 1e-12
    assert abs(pearson_r(x, -x) + 1) < 1e-12
    assert pearson_r(np.ones(5), np.ones(5)) == 1.0
    assert pearson_r(np.ones(5), x[:5]) == 0.0
    assert abs(linear_slope(x, 3 * x - 2) - 3) < 1e-12


def test_identical_distributions_give_zero_frechet_distance():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(400, 16))
    assert frechet_distance_features(f, f) < 1e-6
    # two large samples of one Gaussian: small; a mean shift of 3 in one coordinate: about 9
    g = rng.normal(size=(4000, 4))
    h = rng.normal(size=(4000, 4))
    assert frechet_distance_features(g, h) < 0.05
    assert abs(frechet_distance_features(g, h + np.array([3.0, 0, 0, 0])) - 9.0) < 0.5


def test_fid_fvd_proxies_of_same_clips_are_zero():
    rng = np.random.default_rng(1)
    clips = [np.cumsum(rng.normal(size=(60, 8)), 0) for _ in range(3)]
    assert fid_proxy(clips, clips) < 1e-6
    assert fvd_proxy(clips, clips) < 1e-6
    assert window_descriptors(clips[0]).shape == (6, 16)
    assert fvd_proxy([clips[0][:10]], [clips[0][:10]]) is None


def test_log_mel_shape_and_speech_energy():
    sr, T = 16000, 10
    t = np.arange(T * 640) / sr
    audio = np.where(t < 0.2, 0.0, 0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    mel = log_mel(audio, T, sr)
    assert mel.shape == (T * MELS_PER_FRAME, N_MELS)
    assert mel[-4:].mean() > mel[:4].mean() + 5  # tone frames are much louder than silent ones
