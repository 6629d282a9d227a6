"""Score identity Distillation losses (Zhou et al., ICML 2024; video form as in Self-Forcing; paper.md §9.2).

With a generator sample ``x_g``, its noised version ``x_σ = (1 − σ)·x_g + σ·ε``, the teacher's guided x0
prediction ``f_φ(x_σ)`` and the fake-score network's ``f_ψ(x_σ)``, the generator loss per element is

    L = (f_φ − f_ψ) · [(f_φ − x_g) − α·(f_φ − f_ψ)] / w,    w = stop-grad mean |x_g − f_φ| (per sample),

averaged over all elements, computed in float64 with NaNs zeroed. As in the reference implementation, the
gradient reaches ``x_g`` both directly and through both score networks' *inputs* ``x_σ`` (their parameters are
frozen for this loss); that second path is where α acts — with detached scores the gradient would be
``−(f_φ − f_ψ)/w`` whatever α is. The fake-score network is trained with the ordinary denoising loss on stop-grad
generator samples.

**Paper settings.** SiD's own α is 1.2 (:data:`SID_PAPER_ALPHA`; Self-Forcing's video SiD uses 1.0, the run
default), and Self-Forcing draws the critic level uniformly and then shifts it with its ``timestep_shift``
(:data:`SELF_FORCING_CRITIC_SHIFT` = 5, the σ-shift of the few-step schedule): :func:`critic_sigma`.
"""

from __future__ import annotations

import torch

from streamavatar.diffusion.flow import add_noise, predicted_x0, shift_sigma

#: α of SiD's generator loss in the SiD paper (Zhou et al. 2024, images; paper.md §9.2).
SID_PAPER_ALPHA = 1.2
#: Self-Forcing's ``timestep_shift`` applied to the critic/generator-loss timesteps (paper.md §9.1).
SELF_FORCING_CRITIC_SHIFT = 5.0


def critic_sigma(batch: int, low: float, high: float, shift: float, generator: torch.Generator) -> torch.Tensor:
    """Critic noise levels ``[batch]``: u ~ U(low, high), then the flow shift ``s·u / (1 + (s − 1)·u)``
    (``shift = 1``: uniform σ; Self-Forcing: ``shift = 5``, more weight on high noise)."""
    if not shift > 0:
        raise ValueError(f"critic shift must be positive, got {shift}")
    u = low + (high - low) * torch.rand(batch, generator=generator)
    return shift_sigma(u, shift) if shift != 1.0 else u


def sid_generator_loss(x_g: torch.Tensor, f_real: torch.Tensor, f_fake: torch.Tensor, alpha: float
                       ) -> torch.Tensor:
    """The SiD generator loss (module docstring) of samples ``x_g [B, …]``; a float64 scalar.

    ``f_real``/``f_fake`` should be computed from ``x_σ`` built from ``x_g`` *with* autograd, so the gradient
    flows through them too; only the normaliser ``w`` is detached."""
    xg, fr, ff = x_g.double(), f_real.double(), f_fake.double()
    diff = fr - ff
    loss = diff * ((fr - xg) - alpha * diff)
    dims = tuple(range(1, x_g.ndim))
    w = (xg - fr).abs().mean(dim=dims, keepdim=True).detach()
    return torch.nan_to_num(loss / w).mean()


def fake_score_loss(fake_out: torch.Tensor, x_g: torch.Tensor, noise: torch.Tensor, prediction: str) -> torch.Tensor:
    """Denoising loss of the fake-score network on stop-grad samples: MSE of its x0 (or velocity) target."""
    if prediction == "x0":
        return (fake_out.float() - x_g.detach().float()).pow(2).mean()
    target = noise - x_g.detach()
    return (fake_out.float() - target.float()).pow(2).mean()


def noised(x_g: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``x_σ`` for per-sample ``sigma [B]``."""
    return add_noise(x_g, noise, sigma.view(-1, *([1] * (x_g.ndim - 1))))


def x0_of(out: torch.Tensor, x_t: torch.Tensor, sigma: torch.Tensor, prediction: str) -> torch.Tensor:
    """The x0 a network output implies, for per-sample ``sigma [B]``."""
    return predicted_x0(out.float(), x_t.float(), sigma.view(-1, *([1] * (x_t.ndim - 1))), prediction)
