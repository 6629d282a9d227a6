"""Numerics by equivalence: streaming with the KV cache vs the masked (block-causal) forward, in fp32."""

from __future__ import annotations

import torch

from streamavatar.config import StreamConfig
from streamavatar.models.rope import temporal_positions
from tests.models.dit_helpers import make_model, small_dit_config

TOL = 1e-4
B, H, W = 1, 4, 6  # latent grid 4×6 → 2×3 tokens per frame


def audio(model, frames: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = model.cfg
    return torch.randn(B, frames, c.audio_tokens_per_frame, c.audio_dim, generator=g)


def latents(model, frames: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, model.cfg.latent_channels, frames, H, W, generator=g)


def test_block_causal_with_one_chunk_equals_bidirectional():
    model = make_model()
    x = latents(model, 7, 0)
    t = torch.rand(B, 7, generator=torch.Generator().manual_seed(1)) * 1000
    talk, listen = audio(model, 7, 2), audio(model, 7, 3)
    ref = latents(model, 1, 4)
    # One chunk spanning every frame (no separate reference block): the mask is all True.
    bc = model(x, t, talk_audio=talk, listen_audio=listen, attention="block_causal", chunk_frames=7,
               reference_frames=0, reference=ref)
    bi = model(x, t, talk_audio=talk, listen_audio=listen, attention="bidirectional", reference_frames=0,
               reference=ref)
    assert (bc - bi).abs().max() < TOL
    assert bi.abs().max() > 0.1  # the test has signal
    # With a reference block the reference no longer sees the chunk: the outputs must differ there.
    t[:, 0] = 0
    bc1 = model(x, t, talk_audio=talk[:, 1:], attention="block_causal", chunk_frames=6)
    bi1 = model(x, t, talk_audio=talk[:, 1:], attention="bidirectional")
    assert (bc1[:, :, 0] - bi1[:, :, 0]).abs().max() > 1e-3


def _stream(model, stream: StreamConfig, chunks: list[torch.Tensor], ts: list[torch.Tensor], talks, listens,
            ref: torch.Tensor):
    """Run the streaming path: prefill the reference, then for each chunk one uncommitted pass at ``ts[i]``
    followed by the committing pass (what the sampler does with last_step)."""
    cache = model.new_cache(stream, B, H, W)
    model.forward_chunk(ref, torch.zeros(B, 1), cache, [0], commit=True, reference=ref, reference_frames=1)
    outs = []
    nxt = 1
    for x, t, talk, listen in zip(chunks, ts, talks, listens, strict=True):
        frames = list(range(nxt, nxt + x.shape[2]))
        out = model.forward_chunk(x, t, cache, frames, commit=True, talk_audio=talk, listen_audio=listen,
                                  reference=ref)
        outs.append(out)
        nxt += x.shape[2]
    return outs, cache


def test_streaming_equals_masked_forward_before_eviction_clean_context():
    """clean_pass semantics: every finished chunk is in the cache as its clean latent at t = 0.

    The masked forward sees [reference | chunk 1 clean, t=0 | chunk 2 clean, t=0 | chunk 3 noisy, t]."""
    model = make_model()
    stream = StreamConfig(cache_refresh="clean_pass")
    ref = latents(model, 1, 0)
    clean = [latents(model, 3, 10 + i) for i in range(2)]
    noisy = latents(model, 3, 20)
    t_cur = torch.full((B, 3), 700.0)
    talks = [audio(model, 3, 30 + i) for i in range(3)]
    listens = [audio(model, 3, 40 + i) for i in range(3)]
    outs, cache = _stream(model, stream, clean + [noisy], [torch.zeros(B, 3)] * 2 + [t_cur], talks, listens, ref)
    # Chunk 3 attended to frames 0–9 (nothing evicted before it); its own commit then evicted chunk 2.
    assert cache.frames == [0, 1, 2, 3, 7, 8, 9]

    x = torch.cat([ref] + clean + [noisy], dim=2)
    t = torch.cat([torch.zeros(B, 7), t_cur], dim=1)
    full = model(x, t, talk_audio=torch.cat(talks, 1), listen_audio=torch.cat(listens, 1),
                 attention="block_causal", chunk_frames=3)
    for i, out in enumerate(outs):
        assert (out - full[:, :, 1 + 3 * i:4 + 3 * i]).abs().max() < TOL
    assert full.abs().max() > 0.1


def test_streaming_last_step_equals_masked_forward_with_noisy_context():
    """last_step semantics: a finished chunk stays in the cache as the keys/values of its last denoising pass,
    i.e. of its *noisy* input x_{t_N} at timestep t_N. "The same noisy context" for the masked forward is
    therefore the sequence [reference, t=0 | chunk 1 as fed to its last step, t_N | chunk 2 likewise | current
    chunk at its own t]: the masked forward of that sequence must give the streaming outputs."""
    model = make_model(seed=1)
    stream = StreamConfig()  # last_step
    t_last = 250.0
    ref = latents(model, 1, 0)
    ctx = [latents(model, 3, 50 + i) for i in range(2)]
    cur = latents(model, 3, 60)
    t_cur = torch.full((B, 3), 900.0)
    talks = [audio(model, 3, 70 + i) for i in range(3)]
    listens = [audio(model, 3, 80 + i) for i in range(3)]
    outs, _ = _stream(model, stream, ctx + [cur], [torch.full((B, 3), t_last)] * 2 + [t_cur], talks, listens, ref)
    x = torch.cat([ref] + ctx + [cur], dim=2)
    t = torch.cat([torch.zeros(B, 1), torch.full((B, 6), t_last), t_cur], dim=1)
    full = model(x, t, talk_audio=torch.cat(talks, 1), listen_audio=torch.cat(listens, 1),
                 attention="block_causal", chunk_frames=3)
    assert (outs[-1] - full[:, :, 7:10]).abs().max() < TOL


def test_sampler_last_step_cache_holds_the_last_pass():
    """The ChunkSampler's cache after a chunk equals the keys a committing pass at t_N would write."""
    from streamavatar.diffusion.chunk_sampler import ChunkSampler

    model = make_model(seed=2)
    stream = StreamConfig()
    sampler = ChunkSampler(model, stream)
    ref = latents(model, 1, 0)
    state = sampler.start(ref)
    noises = [latents(model, 3, 90 + i) for i in range(3)]
    it = iter(noises)
    sampler.next_chunk(state, talk_audio=audio(model, 3, 1), noise=lambda s: next(it))
    k_stream = state.cache.layer(1)[0].clone()
    assert state.cache.frames == [0, 1, 2, 3]
    # Replay: the last pass's input is noises[2] blended with the step-2 x0 — recompute it explicitly.
    from streamavatar.diffusion.flow import add_noise, predicted_x0

    sig = sampler.sigmas
    cache = model.new_cache(stream, B, H, W)
    model.forward_chunk(ref, torch.zeros(B, 1), cache, [0], commit=True, reference=ref, reference_frames=1)
    x = noises[0]
    a = audio(model, 3, 1)
    for i, s in enumerate(sig):
        out = model.forward_chunk(x, torch.full((B, 3), s * 1000), cache, [1, 2, 3], commit=i == 2,
                                  talk_audio=a, reference=ref)
        x0 = predicted_x0(out, x, s, model.cfg.prediction)
        if i < 2:
            x = add_noise(x0, noises[i + 1], sig[i + 1])
    assert torch.equal(cache.layer(1)[0], k_stream)


def _explicit_sequence_check(num_layers: int, window: int, chunks: int):
    model = make_model(small_dit_config(num_layers=num_layers), seed=3)
    stream = StreamConfig(window_frames=window)
    ref = latents(model, 1, 0)
    xs = [latents(model, 3, 100 + i) for i in range(chunks)]
    ts = [torch.full((B, 3), 300.0 + 50 * i) for i in range(chunks)]
    talks = [audio(model, 3, 200 + i) for i in range(chunks)]
    listens = [audio(model, 3, 300 + i) for i in range(chunks)]
    outs, cache = _stream(model, stream, xs, ts, talks, listens, ref)
    # The sequence the last chunk attended to, rebuilt explicitly from its inputs.
    history = {0: (ref[:, :, 0], torch.zeros(B))}
    for i, (x, t) in enumerate(zip(xs, ts, strict=True)):
        for j in range(3):
            history[1 + 3 * i + j] = (x[:, :, j], t[:, j])
    audio_of = {}
    for i in range(chunks):
        for j in range(3):
            audio_of[1 + 3 * i + j] = (talks[i][:, j], listens[i][:, j])
    current = list(range(1 + 3 * (chunks - 1), 1 + 3 * chunks))
    # The last chunk attended to the cache as it was before its own commit: the sink (reference + chunk 1)
    # and the `window` frames just before it.
    attended = list(range(stream.sink_frames)) + list(range(current[0] - window, current[0])) + current
    assert attended[0] == 0 and current[0] - 1 > stream.cached_frames  # evictions happened
    seq = torch.stack([history[f][0] for f in attended], dim=2)
    t = torch.stack([history[f][1] for f in attended], dim=1)
    gen = attended[1:]
    talk = torch.stack([audio_of[f][0] for f in gen], dim=1)
    listen = torch.stack([audio_of[f][1] for f in gen], dim=1)
    pos = torch.tensor(temporal_positions(attended, rapr=True))
    # block-causal: reference | chunk 1 (sink) | window chunk | current chunk — all blocks of 3 after the ref.
    full = model(seq, t, talk_audio=talk, listen_audio=listen, attention="block_causal", chunk_frames=3,
                 frame_positions=pos, reference=ref)
    return (outs[-1] - full[:, :, -3:]).abs().max()


def test_after_eviction_one_layer_equals_explicit_sequence_with_rapr_indices():
    """After evictions the chunk computed from the cache equals a masked forward over the explicit sequence
    [sink][window][current] with RAPR indices 0…D.

    With one layer this is exact for any window: a cached frame's layer-0 keys depend only on its own input.
    (In deeper layers a window frame's keys carry the context it was generated in — chunks already evicted —
    which no forward over the explicit sequence can reproduce; the multi-layer case is covered with window = 0
    below, where every cached frame's own context is inside the explicit sequence.)"""
    assert _explicit_sequence_check(num_layers=1, window=3, chunks=7) < TOL


def test_after_eviction_multi_layer_sink_only_equals_explicit_sequence():
    assert _explicit_sequence_check(num_layers=3, window=0, chunks=6) < TOL


def test_rapr_changes_the_result_after_eviction_only():
    model = make_model(seed=4)
    ref = latents(model, 1, 0)
    xs = [latents(model, 3, 400 + i) for i in range(5)]
    ts = [torch.full((B, 3), 500.0)] * 5
    talks = [audio(model, 3, 500 + i) for i in range(5)]
    on, _ = _stream(model, StreamConfig(rapr=True), xs, ts, talks, talks, ref)
    off, _ = _stream(model, StreamConfig(rapr=False), xs, ts, talks, talks, ref)
    for i in range(3):  # chunks 1–3: nothing evicted, identical positions
        assert torch.equal(on[i], off[i])
    assert (on[3] - off[3]).abs().max() > 1e-3
