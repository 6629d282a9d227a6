"""Stage 1 distillation pieces on tiny random models: SiD loss, train = inference, ODE context, ODE loss."""

from __future__ import annotations

import pytest
import torch

from streamavatar.config import StreamConfig
from streamavatar.diffusion.chunk_sampler import ChunkSampler
from streamavatar.diffusion.flow import few_step_sigmas
from streamavatar.errors import UserInputError
from streamavatar.models.audio_projector import AudioProjectorConfig, TalkListenProjector
from streamavatar.models.random_weights import randomize_
from streamavatar.training.ode_init import (
    context_forward,
    ode_regression_loss,
    teacher_trajectory,
    trajectory_sigmas,
)
from streamavatar.training.self_forcing import check_rollout_length, min_rollout_chunks, self_forcing_rollout
from streamavatar.training.sid import sid_generator_loss
from tests.models.dit_helpers import make_model, small_dit_config

B, H, W = 1, 4, 4
TOL = 1e-4


def _lat(model, frames: int, seed: int) -> torch.Tensor:
    return torch.randn(B, model.cfg.latent_channels, frames, H, W, generator=torch.Generator().manual_seed(seed))


def _audio(model, frames: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, frames, model.cfg.audio_tokens_per_frame, model.cfg.audio_dim, generator=g)


# --- SiD loss ---------------------------------------------------------------------------------------------
def test_sid_loss_matches_a_hand_computed_case():
    # sample 1: x_g = (1, 2), f_real = (1.5, 1), f_fake = (1.2, 1.5); sample 2: x_g = (0, 0), f_real = (1, 1),
    # f_fake = (0, 0); alpha = 1.2.
    # sample 1: d = f_real − f_fake = (0.3, −0.5); f_real − x_g = (0.5, −1); inner = (0.5 − 0.36, −1 + 0.6)
    #           = (0.14, −0.4); d·inner = (0.042, 0.2); w = mean|x_g − f_real| = 0.75 → (0.056, 0.266667)
    # sample 2: d = (1, 1); f_real − x_g = (1, 1); inner = (−0.2, −0.2); d·inner = (−0.2, −0.2); w = 1
    # mean over the 4 elements: (0.056 + 0.266667 − 0.4) / 4 = −0.0193333
    x_g = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    f_real = torch.tensor([[1.5, 1.0], [1.0, 1.0]])
    f_fake = torch.tensor([[1.2, 1.5], [0.0, 0.0]])
    loss = sid_generator_loss(x_g, f_real, f_fake, alpha=1.2)
    assert loss.dtype == torch.float64
    assert abs(float(loss.detach()) - (-0.0193333333)) < 1e-8
    loss.backward()
    # d loss / d x_g = −(f_real − f_fake) / w / 4 (w is stop-grad)
    want = torch.tensor([[-0.3 / 0.75 / 4, 0.5 / 0.75 / 4], [-0.25, -0.25]])
    assert torch.allclose(x_g.grad, want, atol=1e-7)


def test_sid_loss_gradient_flows_through_the_scores_where_alpha_acts():
    # x_g = θ = 3, f_real = 2θ, f_fake = θ + 1, α = 1.2 (scores as functions of the sample, as through x_σ).
    # d = θ − 1 = 2, f_real − x_g = θ = 3, inner = θ − α(θ − 1) = 0.6, w = |θ − 2θ| = 3 (detached) → L = 0.4;
    # dL/dθ = (1·inner + d·(1 − α)) / w = (0.6 − 0.4) / 3 = 0.0666667.
    theta = torch.tensor([[3.0]], requires_grad=True)
    loss = sid_generator_loss(theta, 2 * theta, theta + 1, alpha=1.2)
    assert abs(float(loss.detach()) - 0.4) < 1e-9
    loss.backward()
    assert abs(float(theta.grad) - 0.2 / 3) < 1e-6  # float32 input


def test_sid_loss_is_zero_when_teacher_and_fake_agree_and_ignores_nans():
    x = torch.randn(2, 3)
    f = torch.randn(2, 3)
    assert float(sid_generator_loss(x, f, f, alpha=1.0)) == 0.0
    x_nan = x.clone()
    x_nan[0, 0] = float("nan")
    assert torch.isfinite(sid_generator_loss(x_nan, f, f + 1, alpha=1.0))


# --- train = inference ------------------------------------------------------------------------------------
STREAMS = {"sink+rapr": StreamConfig(), "sink-only": StreamConfig(rapr=False),
           "no-sink": StreamConfig(reference_sink=False, rapr=False)}


@pytest.mark.parametrize("name", list(STREAMS))
def test_no_grad_training_rollout_is_bit_identical_to_the_streaming_sampler(name):
    stream = STREAMS[name]
    model = make_model(seed=3)
    chunks = 5
    ref = _lat(model, 1, 0)
    talk, listen = _audio(model, 3 * chunks, 1), _audio(model, 3 * chunks, 2)
    sampler = ChunkSampler(model, stream)
    state = sampler.start(ref)
    g = torch.Generator().manual_seed(7)
    want = [sampler.next_chunk(state, talk_audio=talk[:, 3 * k:3 * k + 3], listen_audio=listen[:, 3 * k:3 * k + 3],
                               generator=g) for k in range(chunks)]
    g2 = torch.Generator().manual_seed(7)
    with torch.no_grad():
        got = self_forcing_rollout(model, stream, ref, chunks, talk=talk, listen=listen, exit_step=None,
                                   noise=lambda s: torch.randn(s, generator=g2))
    assert len(got.final) == chunks
    for a, b in zip(want, got.final, strict=True):
        assert torch.equal(a, b)
    assert want[-1].abs().max() > 0.1


def test_gradient_rollout_keeps_the_inference_chunks_and_carries_grad_at_the_exit_step():
    stream = StreamConfig()
    model = make_model(seed=4).train()
    chunks = 4
    ref = _lat(model, 1, 0)
    talk = _audio(model, 3 * chunks, 1)
    with torch.no_grad():
        g = torch.Generator().manual_seed(9)
        ref_roll = self_forcing_rollout(model, stream, ref, chunks, talk=talk, listen=None, exit_step=None,
                                        noise=lambda s: torch.randn(s, generator=g))
    g = torch.Generator().manual_seed(9)
    roll = self_forcing_rollout(model, stream, ref, chunks, talk=talk, listen=None, exit_step=1,
                                noise=lambda s: torch.randn(s, generator=g))
    for a, b in zip(ref_roll.final, roll.final, strict=True):
        assert (a - b).abs().max() < 1e-6
        assert not b.requires_grad
    assert all(s.requires_grad for s in roll.samples) and len(roll.samples) == chunks
    roll.clip()[:, :, -3:].square().mean().backward()
    assert model.head.head.weight.grad is not None and model.head.head.weight.grad.abs().sum() > 0


def test_rollouts_shorter_than_the_frozen_rapr_layout_are_refused():
    stream = StreamConfig()
    assert min_rollout_chunks(stream) == 4
    assert min_rollout_chunks(StreamConfig(window_frames=6)) == 5
    check_rollout_length(4, stream)
    with pytest.raises(UserInputError, match="rollout-chunks 4"):
        check_rollout_length(3, stream)
    model = make_model()
    with pytest.raises(UserInputError):
        self_forcing_rollout(model, stream, _lat(model, 1, 0), 3, talk=None, listen=None, exit_step=None)


# --- ODE initialisation -----------------------------------------------------------------------------------
def test_ode_context_forward_equals_the_streaming_computation():
    """One masked forward with σ_N context copies gives each chunk what the last-step cache gives it."""
    stream = StreamConfig()
    model = make_model(seed=5)
    sig = few_step_sigmas(stream.timesteps, stream.shift)
    ref = _lat(model, 1, 0)
    ctx = _lat(model, 6, 1)
    cur = _lat(model, 9, 2)
    t_cur = torch.tensor([[sig[0] * 1000] * 3 + [sig[2] * 1000] * 3 + [sig[1] * 1000] * 3])
    talk, listen = _audio(model, 9, 3), _audio(model, 9, 4)
    full = context_forward(model, ref, ctx, cur, sig[-1] * 1000, t_cur, talk, listen)
    cache = model.new_cache(stream, B, H, W)
    model.forward_chunk(ref, torch.zeros(B, 1), cache, [0], commit=True, reference=ref, reference_frames=1)
    for i in range(3):
        sl = slice(3 * i, 3 * i + 3)
        frames = list(range(1 + 3 * i, 4 + 3 * i))
        out = model.forward_chunk(cur[:, :, sl], t_cur[:, sl], cache, frames, commit=False,
                                  talk_audio=talk[:, sl], listen_audio=listen[:, sl], reference=ref)
        assert (out - full[:, :, sl]).abs().max() < TOL
        if i < 2:  # the chunk's last pass (at σ_N) is what later chunks read
            model.forward_chunk(ctx[:, :, sl], torch.full((B, 3), sig[-1] * 1000), cache, frames, commit=True,
                                talk_audio=talk[:, sl], listen_audio=listen[:, sl], reference=ref)
    assert full.abs().max() > 0.1


def test_trajectory_grid_passes_through_the_student_levels():
    keep = few_step_sigmas(StreamConfig().timesteps, StreamConfig().shift)
    grid = trajectory_sigmas(40, 3.0, keep)
    assert grid[0] == 1.0 and grid[-1] == 0.0 and grid == sorted(grid, reverse=True)
    for s in keep:
        assert min(abs(s - g) for g in grid) == 0.0
    assert len(grid) == 41 + 2  # 1.0 already on the grid; 0.909 and 0.714 are inserted


def test_teacher_trajectory_keeps_the_states_and_is_deterministic():
    model = make_model(small_dit_config(prediction="x0"), seed=6)
    keep = few_step_sigmas(StreamConfig().timesteps, StreamConfig().shift)
    grid = trajectory_sigmas(6, 3.0, keep)
    ref, noise = _lat(model, 1, 0), _lat(model, 9, 1)
    talk = _audio(model, 9, 2)
    kw = dict(talk=talk, listen=None, null_talk=torch.zeros_like(talk), null_listen=None, talk_scale=2.0,
              listen_scale=1.0)
    states, x0 = teacher_trajectory(model, ref, noise, grid, keep, **kw)
    states2, x02 = teacher_trajectory(model, ref, noise, grid, keep, **kw)
    assert states.shape == (B, 3, model.cfg.latent_channels, 9, H, W)
    assert torch.equal(states[:, 0], noise) and torch.equal(states, states2) and torch.equal(x0, x02)
    assert (states[:, 1] - states[:, 2]).abs().max() > 1e-3


def test_ode_init_loss_goes_down_with_a_fixed_seed():
    stream = StreamConfig()
    torch.manual_seed(0)
    model = make_model(small_dit_config(prediction="x0"), seed=7).train()
    pc = AudioProjectorConfig(window=2, num_layers=2, feature_dim=8, n_tokens=model.cfg.audio_tokens_per_frame,
                              audio_dim=model.cfg.audio_dim, hidden_dim=16)
    projector = randomize_(TalkListenProjector(pc), seed=1)
    g = torch.Generator().manual_seed(0)
    b = 2
    batch = {"reference": torch.randn(b, 4, 1, H, W, generator=g),
             "states": torch.randn(b, 3, 4, 9, H, W, generator=g), "x0": torch.randn(b, 4, 9, H, W, generator=g),
             "talk": torch.randn(b, 9, 2, 2, 8, generator=g), "listen": torch.randn(b, 9, 2, 2, 8, generator=g)}
    opt = torch.optim.AdamW(list(model.parameters()) + list(projector.parameters()), lr=3e-3)
    losses = []
    for _ in range(12):
        loss, stats = ode_regression_loss(model, projector, batch, stream, torch.Generator().manual_seed(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(stats["loss"])
    assert losses[-1] < 0.7 * losses[0], losses
