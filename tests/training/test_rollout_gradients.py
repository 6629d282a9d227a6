"""What a self-forcing rollout may and may not differentiate through.

* No gradient crosses chunks: the loss of chunk k has zero gradient w.r.t. the latents that earlier chunks fed
  through their gradient-carrying forward (their keys/values reach chunk k only through the KV cache, whose staged
  entries are detached in ``models/kv_cache.py``). Removing that ``.detach()`` makes
  ``test_no_gradient_crosses_chunks_through_the_cache`` fail.
* Audio attention stays inside its own latent frame: perturbing the talk audio of latent frame j of a chunk changes
  only frame j at the first block (self-attention runs before the audio attention in a block, so nothing mixes
  frames before it), and only frame j's time modulation when audio also modulates the blocks.
"""

from __future__ import annotations

import torch

from streamavatar.config import StreamConfig
from streamavatar.training.self_forcing import self_forcing_rollout
from tests.models.dit_helpers import make_model, small_dit_config

CHUNKS = 5  # past the first eviction of the default cache (chunk 4)


def _rollout_with_leaf_noise(exit_step: int):
    """A rollout whose every noise draw is a leaf tensor that requires grad; (rollout, [(chunk, noise)])."""
    torch.manual_seed(0)
    cfg = small_dit_config(prediction="x0")
    model = make_model(cfg, seed=3)
    for p in model.parameters():
        p.requires_grad_(False)
    stream = StreamConfig()
    c = stream.chunk_frames
    g = torch.Generator().manual_seed(1)
    draws: list[torch.Tensor] = []

    def noise(shape):
        n = torch.randn(shape, generator=g).requires_grad_(True)
        draws.append(n)
        return n

    ref = torch.randn(1, cfg.latent_channels, 1, 8, 8, generator=g)
    n_tok, a = cfg.audio_tokens_per_frame, cfg.audio_dim
    talk = torch.randn(1, CHUNKS * c, n_tok, a, generator=g)
    listen = torch.randn(1, CHUNKS * c, n_tok, a, generator=g)
    roll = self_forcing_rollout(model, stream, ref, CHUNKS, talk=talk, listen=listen, exit_step=exit_step,
                                noise=noise)
    per_chunk = len(draws) // CHUNKS
    assert per_chunk == stream.num_steps
    return roll, [(i // per_chunk, n) for i, n in enumerate(draws)]


def test_no_gradient_crosses_chunks_through_the_cache():
    # Exit at the last step: that pass is also the one whose keys/values the cache keeps ("last_step"), so
    # without the detach its graph would reach every later chunk.
    roll, draws = _rollout_with_leaf_noise(exit_step=2)
    for k in (1, 3, 4):
        loss = roll.samples[k].pow(2).sum()
        grads = torch.autograd.grad(loss, [n for _, n in draws], allow_unused=True, retain_graph=True)
        for (chunk, _), gr in zip(draws, grads, strict=True):
            if chunk < k:
                assert gr is None or float(gr.abs().max()) == 0.0, f"chunk {k}'s loss reaches chunk {chunk}"
        own = [gr for (chunk, _), gr in zip(draws, grads, strict=True) if chunk == k and gr is not None]
        assert own and float(own[-1].abs().max()) > 0  # the chunk's own exit-step input does get a gradient


def test_only_the_exit_step_of_each_chunk_carries_gradients():
    roll, draws = _rollout_with_leaf_noise(exit_step=1)
    loss = sum(s.pow(2).sum() for s in roll.samples)
    grads = torch.autograd.grad(loss, [n for _, n in draws], allow_unused=True)
    # per chunk: draw 0 feeds step 0 (no grad), draw 1 feeds step 1 (the exit step), draw 2 feeds step 2 (no grad)
    for i, gr in enumerate(grads):
        step = i % 3
        if step == 1:
            assert gr is not None and float(gr.abs().max()) > 0
        else:
            assert gr is None or float(gr.abs().max()) == 0.0


def _block0_per_frame(model, talk: torch.Tensor, x: torch.Tensor, ref: torch.Tensor, stream: StreamConfig):
    """Output tokens of block 0 for one chunk after the reference, split per latent frame ``[F, S, d]``."""
    cache = model.new_cache(stream, 1, 8, 8)
    model.forward_chunk(ref, torch.zeros(1, 1), cache, [0], commit=True, reference=ref, reference_frames=1)
    seen = {}
    hook = model.blocks[0].register_forward_hook(lambda _m, _i, out: seen.setdefault("out", out))
    try:
        t = torch.full((1, x.shape[2]), 800.0)
        model.forward_chunk(x, t, cache, [1, 2, 3], commit=False, talk_audio=talk, reference=ref)
    finally:
        hook.remove()
    return seen["out"][0].reshape(x.shape[2], -1, model.cfg.dim)


def test_audio_attention_stays_inside_its_latent_frame():
    torch.manual_seed(0)
    cfg = small_dit_config(prediction="x0", audio_modulation=False)
    model = make_model(cfg, seed=4)
    stream = StreamConfig()
    g = torch.Generator().manual_seed(2)
    ref = torch.randn(1, cfg.latent_channels, 1, 8, 8, generator=g)
    x = torch.randn(1, cfg.latent_channels, 3, 8, 8, generator=g)
    talk = torch.randn(1, 3, cfg.audio_tokens_per_frame, cfg.audio_dim, generator=g)
    with torch.no_grad():
        base = _block0_per_frame(model, talk, x, ref, stream)
        for j in range(3):
            bumped = talk.clone()
            bumped[:, j] += torch.randn(bumped[:, j].shape, generator=g)
            out = _block0_per_frame(model, bumped, x, ref, stream)
            change = (out - base).abs().flatten(1).amax(dim=1)
            assert change[j] > 1e-4, change
            for other in set(range(3)) - {j}:
                assert change[other] == 0.0, (j, change)


def test_audio_modulation_stays_inside_its_latent_frame():
    torch.manual_seed(0)
    cfg = small_dit_config(prediction="x0", audio_modulation=True)
    model = make_model(cfg, seed=5)
    g = torch.Generator().manual_seed(3)
    talk = torch.randn(1, 3, cfg.audio_tokens_per_frame, cfg.audio_dim, generator=g)
    t = torch.full((1, 3), 800.0)
    with torch.no_grad():
        _, base = model._time(t, talk, None, 0)
        for j in range(3):
            bumped = talk.clone()
            bumped[:, j] += 1.0
            _, e0 = model._time(t, bumped, None, 0)
            change = (e0 - base).abs().flatten(2).amax(dim=2)[0]
            assert change[j] > 1e-4 and all(change[o] == 0.0 for o in range(3) if o != j), (j, change)
