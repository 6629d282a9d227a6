"""The ring KV cache (static shapes) gives the outputs of the shifting cache, over streams that evict often."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from streamavatar.config import model_preset
from streamavatar.diffusion.chunk_sampler import ChunkSampler
from streamavatar.models.dit import AvatarDiT
from streamavatar.models.kv_cache import RingKVCache, StreamingKVCache
from streamavatar.models.random_weights import randomize_


def _stream(model: AvatarDiT, stream, chunks: int) -> tuple[torch.Tensor, object, list]:
    sampler = ChunkSampler(model, stream)
    g = torch.Generator().manual_seed(0)
    c = model.cfg
    state = sampler.start(torch.randn(1, c.latent_channels, 1, 4, 4, generator=g))
    outs, shapes = [], []
    for _ in range(chunks):
        talk = torch.randn(1, 3, c.audio_tokens_per_frame, c.audio_dim, generator=g)
        listen = torch.randn(1, 3, c.audio_tokens_per_frame, c.audio_dim, generator=g)
        outs.append(sampler.next_chunk(state, talk_audio=talk, listen_audio=listen, generator=g))
        shapes.append(tuple(state.cache.layer(0)[0].shape))
    return torch.stack(outs), state, shapes


@pytest.fixture(scope="module")
def tiny():
    return randomize_(AvatarDiT(model_preset("tiny").dit), seed=1).eval()


# window 3 = the preset (every chunk replaces the whole window); 5 frames: the ring wraps mid-chunk, so slots
# are out of temporal order; no sink: the reference itself is evicted; RAPR off: absolute positions.
@pytest.mark.parametrize("over", [{}, {"window_frames": 5}, {"window_frames": 5, "reference_sink": False},
                                  {"window_frames": 5, "rapr": False}, {"cache_refresh": "clean_pass"}])
def test_ring_cache_equals_the_shifting_cache(tiny, over):
    stream = replace(model_preset("tiny").stream, **over)
    want, state, _ = _stream(tiny, stream, 7)
    got, ring_state, ring_shapes = _stream(tiny, replace(stream, ring_cache=True), 7)
    assert isinstance(ring_state.cache, RingKVCache) and type(state.cache) is StreamingKVCache
    assert ring_state.cache.frames == state.cache.frames
    assert state.cache.frames[-1] == 21 and 4 not in state.cache.frames  # evicted several times
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6 * float(want.abs().max()))
    assert len(set(ring_shapes)) == 1, "the ring cache's attended keys must keep one shape"


def test_ring_slots_wrap_out_of_temporal_order(tiny):
    stream = replace(model_preset("tiny").stream, window_frames=5, ring_cache=True)
    _, state, _ = _stream(tiny, stream, 4)
    cache = state.cache
    window_slots = cache.slot_frames[cache.sink_capacity:]
    assert sorted(window_slots) == cache.window_frames and window_slots != cache.window_frames
    # positions are RAPR's temporal order, assigned to the slot that holds each frame
    pos = cache.key_positions([13, 14, 15])
    rank = {f: i for i, f in enumerate(cache.frames + [13, 14, 15])}
    assert pos == [rank[f] for f in cache.slot_frames] + [rank[13], rank[14], rank[15]]
