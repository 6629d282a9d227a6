"""Streaming state over long streams, the chunk sampler, presets, and bad input."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from streamavatar import constants as K
from streamavatar.config import DiTConfig, StreamConfig, model_preset
from streamavatar.diffusion.chunk_sampler import ChunkSampler
from streamavatar.errors import UserInputError
from streamavatar.models.dit import AvatarDiT, block_causal_mask
from streamavatar.models.random_weights import randomize_
from tests.models.dit_helpers import make_model


def _stream_tiny(chunks: int, model: AvatarDiT, stream: StreamConfig) -> tuple[ChunkSampler, object]:
    sampler = ChunkSampler(model, stream)
    g = torch.Generator().manual_seed(0)
    state = sampler.start(torch.randn(1, model.cfg.latent_channels, 1, 4, 4, generator=g))
    shapes = None
    for i in range(chunks):
        talk = torch.randn(1, 3, model.cfg.audio_tokens_per_frame, model.cfg.audio_dim, generator=g)
        out = sampler.next_chunk(state, talk_audio=talk, generator=g)
        now = [(tuple(t.shape), t.dtype, t.data_ptr()) for t in state.cache.tensors()]
        if i == 0:
            shapes = now
        assert now == shapes, f"cache changed at chunk {i}"
        assert len(state.cache.frames) <= stream.cached_frames
        assert torch.isfinite(out).all()
    return sampler, state


def test_ten_minute_stream_keeps_every_cache_tensor_at_constant_size():
    """A 10-minute stream (1250 chunks) of the tiny preset never reallocates or grows a cache tensor.

    The full tiny DiT streams 125 chunks (1 minute, far past the first eviction at chunk 4); the whole
    10 minutes run on a 1-layer DiT with the tiny preset's streaming geometry, since the cache logic is the
    same for every layer. A 2×2-token latent keeps the test fast; the cache logic does not depend on the
    resolution. (The 30-minute timing run is `streamavatar bench stream --seconds 1800`.)"""
    cfg = model_preset("tiny")
    chunks = math.ceil(600 / K.CHUNK_SECONDS)
    assert chunks == 1250
    full = randomize_(AvatarDiT(cfg.dit), seed=0).to(torch.bfloat16).eval()
    _, state = _stream_tiny(125, full, cfg.stream)
    assert state.cache.frames == [0, 1, 2, 3, 373, 374, 375]
    one_layer = randomize_(AvatarDiT(replace(cfg.dit, num_layers=1)), seed=0).to(torch.bfloat16).eval()
    _, state = _stream_tiny(chunks, one_layer, cfg.stream)
    assert state.cache.frames == [0, 1, 2, 3, 3 * chunks - 2, 3 * chunks - 1, 3 * chunks]
    assert state.next_frame == 3 * chunks + 1


def test_sampler_is_deterministic_and_uses_n_steps():
    model = make_model()
    calls = []
    original = model.forward_chunk

    def counting(*a, **k):
        calls.append(k["commit"])
        return original(*a, **k)

    model.forward_chunk = counting
    for refresh, per_chunk in (("last_step", [False, False, True]), ("clean_pass", [False, False, False, True])):
        outs = []
        for _ in range(2):
            calls.clear()
            sampler = ChunkSampler(model, StreamConfig(cache_refresh=refresh))
            state = sampler.start(torch.ones(1, 4, 1, 4, 6))
            g = torch.Generator().manual_seed(7)
            outs.append(torch.cat([sampler.next_chunk(state, generator=g) for _ in range(3)], dim=2))
        assert torch.equal(outs[0], outs[1])
        assert calls == [True] + per_chunk * 3
        assert outs[0].shape == (1, 4, 9, 4, 6)


def test_sigmas_are_shifted_and_decreasing():
    s = ChunkSampler(make_model(), StreamConfig()).sigmas
    assert len(s) == K.STUDENT_DENOISING_STEPS
    assert s[0] == pytest.approx(1.0) and s == sorted(s, reverse=True)
    assert s[-1] > 333.3 / 1000  # shift 5 pushes the steps towards noise


def test_presets_and_unknown_names():
    assert model_preset("wan2.2-ti2v-5b").vae_spatial_stride == K.WAN22_VAE_SPATIAL_STRIDE
    assert model_preset("tiny").stream.rapr_max_distance == K.RAPR_MAX_DISTANCE
    with pytest.raises(ValueError, match="unknown preset 'wan3'.*expected one of"):
        model_preset("wan3")
    with pytest.raises(ValueError, match="velocity"):
        DiTConfig(dim=32, ffn_dim=64, num_heads=2, num_layers=1, latent_channels=16)  # token 64 wide > dim 32
    with pytest.raises(ValueError, match="timesteps"):
        StreamConfig(num_steps=2)
    cfg = model_preset("tiny")
    assert type(cfg).from_dict(cfg.to_dict()) == cfg


def test_bad_input_names_expected_and_got():
    model = make_model()
    x = torch.zeros(1, 4, 7, 4, 6)
    t = torch.zeros(1, 7)
    with pytest.raises(UserInputError, match=r"latents must be \[B, 4, F, H, W\], got \(1, 3, 7, 4, 6\)"):
        model(torch.zeros(1, 3, 7, 4, 6), t)
    with pytest.raises(UserInputError, match=r"timesteps must be \[B, F\] = \[1, 7\], got \(7,\)"):
        model(x, torch.zeros(7))
    with pytest.raises(UserInputError, match=r"talk audio tokens must be .*\[1, 6, 2, 24\].*got \[1, 7, 2, 24\]"):
        model(x, t, talk_audio=torch.zeros(1, 7, 2, 24))
    with pytest.raises(UserInputError, match="do not split into 1 reference frame"):
        model(torch.zeros(1, 4, 6, 4, 6), torch.zeros(1, 6), attention="block_causal")
    with pytest.raises(UserInputError, match="not divisible by the patch"):
        model(torch.zeros(1, 4, 7, 5, 6), t)
    with pytest.raises(UserInputError, match="attention must be"):
        model(x, t, attention="sideways")
    with pytest.raises(UserInputError, match="do not split"):
        block_causal_mask(8, 1, 3)
    sampler = ChunkSampler(model, StreamConfig())
    with pytest.raises(UserInputError, match=r"reference latent must be \[B, C, 1, H, W\]"):
        sampler.start(torch.zeros(1, 4, 2, 4, 6))
    state = sampler.start(torch.zeros(1, 4, 1, 4, 6))
    with pytest.raises(UserInputError, match=r"listen audio tokens"):
        sampler.next_chunk(state, listen_audio=torch.zeros(1, 2, 2, 24))
