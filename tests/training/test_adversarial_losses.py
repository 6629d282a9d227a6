"""Stage 2 losses: relativistic softplus on hand-computed cases; finite-difference R1/R2 against autograd."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from streamavatar.training.adversarial import (
    finite_difference_penalty,
    gradient_norm_penalty,
    relativistic_d_loss,
    relativistic_g_loss,
)


def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_relativistic_losses_on_a_hand_computed_case():
    d_real = torch.tensor([1.0, -0.5])
    d_fake = torch.tensor([0.0, 1.5])
    # D: softplus(D_f − D_r) → softplus(−1) = 0.31326, softplus(2) = 2.12693; mean 1.22010
    want_d = (_softplus(-1.0) + _softplus(2.0)) / 2
    # G: softplus(D_r − D_f) → softplus(1) = 1.31326, softplus(−2) = 0.12693; mean 0.72010
    want_g = (_softplus(1.0) + _softplus(-2.0)) / 2
    assert float(relativistic_d_loss(d_real, d_fake)) == pytest.approx(want_d, abs=1e-6)
    assert float(relativistic_g_loss(d_real, d_fake)) == pytest.approx(want_g, abs=1e-6)
    assert want_d == pytest.approx(1.220095, abs=1e-6) and want_g == pytest.approx(0.720095, abs=1e-6)
    # the discriminator's loss falls as real logits rise above fake ones, the generator's rises
    up = torch.tensor([3.0, 1.5])
    assert relativistic_d_loss(up, d_fake) < relativistic_d_loss(d_real, d_fake)
    assert relativistic_g_loss(up, d_fake) > relativistic_g_loss(d_real, d_fake)
    # relativistic: only the difference counts
    assert float(relativistic_d_loss(d_real + 7, d_fake + 7)) == pytest.approx(want_d, abs=1e-5)
    with pytest.raises(ValueError):
        relativistic_d_loss(d_real, d_fake[:1])


def test_finite_difference_penalty_is_exact_for_a_linear_discriminator():
    w = torch.tensor([[0.5, -2.0, 1.0]])
    d = lambda x: x @ w.T  # noqa: E731
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    got = finite_difference_penalty(d, x, eps=0.01, generator=g)
    n = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    want = (n @ w.T).pow(2).sum(dim=1).mean()  # (w · n)², the same noise
    torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-3)


class TinyD(nn.Module):
    """Two logits from a small tanh MLP (non-linear, so the finite difference is only approximate)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.net[0].weight.dtype))


def test_finite_difference_penalty_matches_the_autograd_gradient_penalty_and_its_parameter_gradient():
    d = TinyD().double()
    x = torch.randn(1, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    exact = gradient_norm_penalty(d, x)
    (g_exact,) = torch.autograd.grad(exact, [d.net[0].weight])
    # E_n[(∇D·n)²] = ‖∇D‖²: average the estimate over many noise draws (one sample repeated)
    many = x.expand(20000, -1)
    approx = finite_difference_penalty(d, many, eps=1e-3, generator=torch.Generator().manual_seed(3))
    (g_approx,) = torch.autograd.grad(approx, [d.net[0].weight])
    assert float(approx.detach()) == pytest.approx(float(exact.detach()), rel=0.03)
    cos = torch.nn.functional.cosine_similarity(g_exact.flatten(), g_approx.flatten(), dim=0)
    assert float(cos) > 0.98
    assert float(g_approx.norm() / g_exact.norm()) == pytest.approx(1.0, rel=0.05)


def test_penalty_reuses_a_given_base_output_and_refuses_a_bad_eps():
    d = TinyD()
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(4))
    a = finite_difference_penalty(d, x, generator=torch.Generator().manual_seed(5))
    b = finite_difference_penalty(d, x, generator=torch.Generator().manual_seed(5), d_x=d(x))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError):
        finite_difference_penalty(d, x, eps=0.0)
