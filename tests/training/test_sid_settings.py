"""SiD's paper settings as options: α (SiD: 1.2) and Self-Forcing's shifted critic σ (shift 5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from streamavatar.config import StreamConfig
from streamavatar.diffusion.flow import shift_sigma
from streamavatar.errors import UserInputError
from streamavatar.training.distill import DistillConfig
from streamavatar.training.sid import (
    SELF_FORCING_CRITIC_SHIFT,
    SID_PAPER_ALPHA,
    critic_sigma,
    noised,
    sid_generator_loss,
)
from streamavatar.training.sid_train import SiDModels, sid_clip_loss


def test_unshifted_critic_sigma_is_the_old_uniform_draw():
    a = critic_sigma(5, 0.02, 0.98, 1.0, torch.Generator().manual_seed(0))
    b = 0.02 + 0.96 * torch.rand(5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)  # runs without the option keep their random stream


def test_shifted_critic_sigma_is_the_flow_shift_of_the_uniform_draw():
    u = critic_sigma(4000, 0.02, 0.98, 1.0, torch.Generator().manual_seed(1))
    s = critic_sigma(4000, 0.02, 0.98, SELF_FORCING_CRITIC_SHIFT, torch.Generator().manual_seed(1))
    torch.testing.assert_close(s, shift_sigma(u, 5.0))
    assert shift_sigma(0.02, 5.0) - 1e-6 <= float(s.min()) and float(s.max()) <= shift_sigma(0.98, 5.0) + 1e-6
    assert float(s.mean()) > float(u.mean()) + 0.2  # shift 5 spends most draws at high noise
    assert float((s > 0.5).float().mean()) > 0.8
    with pytest.raises(ValueError):
        critic_sigma(2, 0.1, 0.9, 0.0, torch.Generator())


class _Scores:
    """Stand-ins for the two score networks: fixed functions of their input, so the loss is checkable."""

    def __init__(self, cfg: DistillConfig) -> None:
        self.cfg, self.stream = cfg, StreamConfig()
        self.teacher, self.fake = nn.Linear(1, 1), nn.Linear(1, 1)

    window_start = SiDModels.window_start

    def conditioned(self, net, x_t, sigma, ref, talk, listen, guided):
        return torch.tanh(x_t) if guided else 0.5 * x_t


def test_sid_clip_loss_uses_the_configured_alpha_and_shifted_sigma():
    cfg = DistillConfig(teacher="t", data="d", out="o", sid_alpha=SID_PAPER_ALPHA,
                        sid_sigma_shift=SELF_FORCING_CRITIC_SHIFT)
    m = _Scores(cfg)
    g0 = torch.Generator().manual_seed(3)
    clip = torch.randn(2, 4, 12, 4, 4, generator=g0)
    batch = {"latents": torch.randn(2, 4, 13, 4, 4, generator=g0), "talk": torch.zeros(2, 12, 1),
             "listen": torch.zeros(2, 12, 1)}
    g = torch.Generator().manual_seed(7)
    loss, stats = sid_clip_loss(m, clip, batch, 9, g)
    # replay the same draws: window start, critic σ (shifted), noise
    r = torch.Generator().manual_seed(7)
    s = range(0, 12 - 9 + 1, 3)[int(torch.randint(2, (1,), generator=r))]
    sigma = shift_sigma(0.02 + 0.96 * torch.rand(2, generator=r), 5.0)
    x_g = clip[:, :, s:s + 9]
    x_t = noised(x_g, sigma, torch.randn(x_g.shape, generator=r))
    want = sid_generator_loss(x_g, torch.tanh(x_t), 0.5 * x_t, 1.2)
    assert stats["window"] == s and stats["sigma"] == pytest.approx(float(sigma.mean()))
    torch.testing.assert_close(loss, want)
    other = sid_generator_loss(x_g, torch.tanh(x_t), 0.5 * x_t, 1.0)
    assert abs(float(other - want)) > 1e-6  # α matters


def test_distill_flags_carry_the_paper_settings():
    from streamavatar.cli import build_parser
    from streamavatar.config_flags import config_from_args

    a = build_parser().parse_args(["train", "distill", "--teacher", "t", "--data", "d", "--out", "o",
                                   "--sid-alpha", "1.2", "--sid-sigma-shift", "5"])
    cfg = config_from_args(DistillConfig, a)
    assert cfg.sid_alpha == 1.2 and cfg.sid_sigma_shift == 5.0
    assert DistillConfig(teacher="t", data="d", out="o").sid_sigma_shift == 1.0  # today's default: uniform
    with pytest.raises(UserInputError, match="sid_sigma_shift"):
        DistillConfig(teacher="t", data="d", out="o", sid_sigma_shift=0.0)
