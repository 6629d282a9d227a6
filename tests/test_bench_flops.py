"""The analytic FLOP count of a chunk equals what ``FlopCounterMode`` measures on the running DiT."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from streamavatar.bench.flops import dit_chunk_flops, peak_bf16_tflops, throughput
from streamavatar.config import model_preset
from streamavatar.diffusion.chunk_sampler import ChunkSampler
from streamavatar.models.dit import AvatarDiT


@pytest.mark.parametrize("name,over", [("tiny", {}), ("tiny", {"ring_cache": True}),
                                       ("tiny48", {"cache_refresh": "clean_pass", "window_frames": 6})])
def test_analytic_chunk_flops_match_the_flop_counter(name, over):
    cfg = model_preset(name)
    stream = replace(cfg.stream, **over)
    torch.manual_seed(0)
    model = AvatarDiT(cfg.dit).eval()
    sampler = ChunkSampler(model, stream)
    c = model.cfg
    h, w = 8, 6
    state = sampler.start(torch.randn(1, c.latent_channels, 1, h, w))
    audio = torch.randn(1, stream.chunk_frames, c.audio_tokens_per_frame, c.audio_dim)
    tokens = (h // 2) * (w // 2)
    for _ in range(4):
        cached = len(state.cache.frames)
        # the math backend runs attention as matrix products, which the counter sees on the CPU
        with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
            sampler.next_chunk(state, talk_audio=audio, listen_audio=audio)
        want = dit_chunk_flops(c, stream, tokens, cached_frames=cached)
        assert counter.get_total_flops() == pytest.approx(want.per_chunk, rel=0.01)


def test_full_cache_is_the_default_and_a_ring_counts_its_whole_buffer():
    cfg = model_preset("tiny")
    full = dit_chunk_flops(cfg.dit, cfg.stream, 16)
    assert full.attended_tokens == (cfg.stream.cached_frames + cfg.stream.chunk_frames) * 16
    assert dit_chunk_flops(cfg.dit, cfg.stream, 16, cached_frames=1).per_chunk < full.per_chunk
    ring = replace(cfg.stream, ring_cache=True)
    assert dit_chunk_flops(cfg.dit, ring, 16, cached_frames=1).per_chunk == full.per_chunk


def test_peak_table_and_throughput():
    assert peak_bf16_tflops("NVIDIA H200") == pytest.approx(989.4)
    assert peak_bf16_tflops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4)
    assert peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_bf16_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_bf16_tflops("cpu") is None and peak_bf16_tflops(None) is None
    t = throughput(int(494.7e12), 1.0, "NVIDIA H200")
    assert t["tflops"] == pytest.approx(494.7) and t["fraction_of_peak"] == pytest.approx(0.5)
    assert throughput(10**12, 1.0, None)["fraction_of_peak"] is None
