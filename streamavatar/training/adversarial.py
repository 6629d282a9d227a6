"""Stage 2 losses: the relativistic adversarial loss and finite-difference R1/R2 (paper.md §5, §9.1).

**Relativistic pairing** (R3GAN, Huang et al. 2024; Self-Forcing's GAN objective). Each real clip is paired with
the generated clip of the same reference and audio; with logits ``D_r = D(real)`` and ``D_f = D(fake)``

    discriminator:  L_D = softplus(D_f − D_r) = −log σ(D_r − D_f)
    generator:      L_G = softplus(D_r − D_f) = −log σ(D_f − D_r)

averaged over the logits (one per latent frame for the local head, paired frame by frame, one per clip for the
global head).

**Approximate R1/R2** (APT, Lin et al. 2025; Self-Forcing's ``r1``/``r2`` with σ = 0.01). R1 penalises the
discriminator's gradient norm at real inputs, R2 at generated ones. Instead of a double backward,

    R(x) = ‖D(x + ε·n) − D(x)‖² / ε²,    n ~ N(0, I),

which for small ε is ``(∇D(x) · n)²``, whose expectation over n is ``‖∇D(x)‖²`` — the exact penalty — for each
logit. Only the discriminator's parameters get gradients from it (the inputs are detached).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from streamavatar.training.configs import R1_SIGMA


def relativistic_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's relativistic loss ``mean softplus(D_f − D_r)`` of paired logits (same shape)."""
    if d_real.shape != d_fake.shape:
        raise ValueError(f"paired logits must have one shape, got {tuple(d_real.shape)} and {tuple(d_fake.shape)}")
    return F.softplus(d_fake.float() - d_real.float()).mean()


def relativistic_g_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The generator's relativistic loss ``mean softplus(D_r − D_f)`` of paired logits (same shape)."""
    if d_real.shape != d_fake.shape:
        raise ValueError(f"paired logits must have one shape, got {tuple(d_real.shape)} and {tuple(d_fake.shape)}")
    return F.softplus(d_real.float() - d_fake.float()).mean()


def finite_difference_penalty(d: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float = R1_SIGMA,
                              generator: torch.Generator | None = None,
                              d_x: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_b ‖D(x + ε·n) − D(x)‖² / ε²`` (module docstring) for a discriminator ``d`` mapping ``x [B, …]`` to
    logits ``[B, …]``; ``d_x`` reuses an already computed ``D(x)``. ``x`` is detached first."""
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    x = x.detach()
    n = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    base = d(x) if d_x is None else d_x
    diff = (d(x + eps * n).float() - base.float()) / eps
    return diff.pow(2).flatten(1).sum(dim=1).mean()


def gradient_norm_penalty(d: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The exact penalty ``mean_b Σ_logits ‖∂D_j/∂x_b‖²`` by autograd (the reference the finite difference
    approximates; one backward per logit, so for tests and small outputs only)."""
    x = x.detach().requires_grad_(True)
    out = d(x).float().flatten(1)
    total = torch.zeros((), dtype=torch.float32)
    for j in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, j].sum(), x, create_graph=True)
        total = total + g.float().pow(2).flatten(1).sum(dim=1).mean()
    return total
