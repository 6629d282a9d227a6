"""Flow matching on Wan's convention: ``x_σ = (1 − σ)·x0 + σ·ε``, velocity target ``ε − x0``, shifted σ."""

from __future__ import annotations

import torch

from streamavatar import constants as K
from streamavatar.config import Prediction


def shift_sigma(sigma: float | torch.Tensor, shift: float) -> float | torch.Tensor:
    """Wan/SD3 sigma shift: ``σ' = s·σ / (1 + (s − 1)·σ)`` (more steps spent at high noise for s > 1)."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def sigma_to_timestep(sigma: float | torch.Tensor) -> float | torch.Tensor:
    """The model's timestep input for a noise level σ ∈ [0, 1]."""
    return sigma * K.NUM_TRAIN_TIMESTEPS


def reference_input(reference: torch.Tensor, x_t: torch.Tensor,
                    sigma: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model input of a clean reference and noised frames: ``[reference | x_t]`` on the frame axis and the
    per-frame timesteps — 0 for the reference frames, ``σ·1000`` for the others.

    ``sigma``: one float for every sample, ``[B]`` (one level per sample) or ``[B, F]`` (per frame)."""
    b, r, f = x_t.shape[0], reference.shape[2], x_t.shape[2]
    seq = torch.cat([reference, x_t], dim=2)
    if isinstance(sigma, torch.Tensor):
        t_x = sigma_to_timestep(sigma)
        t_x = t_x.view(b, 1).expand(b, f) if t_x.dim() == 1 else t_x
    else:
        t_x = torch.full((b, f), sigma_to_timestep(float(sigma)), device=x_t.device)
    return seq, torch.cat([torch.zeros(b, r, device=x_t.device), t_x.to(x_t.device)], dim=1)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """``x_σ = (1 − σ)·x0 + σ·ε``; ``sigma`` broadcasts (a float, or ``[B, 1, F, 1, 1]``)."""
    return (1 - sigma) * x0 + sigma * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The flow-matching velocity ``ε − x0``."""
    return noise - x0


def predicted_x0(model_out: torch.Tensor, x_t: torch.Tensor, sigma: float | torch.Tensor,
                 prediction: Prediction) -> torch.Tensor:
    """The clean latent implied by a model output (velocity: ``x_t − σ·v``; x0: the output itself)."""
    if prediction == "x0":
        return model_out
    if prediction == "velocity":
        return x_t - sigma * model_out
    raise ValueError(f"unknown prediction {prediction!r}")


def few_step_sigmas(timesteps: tuple[float, ...], shift: float) -> list[float]:
    """Noise levels of the student's steps: each timestep in [0, 1000] scaled to σ and shifted."""
    return [float(shift_sigma(t / K.NUM_TRAIN_TIMESTEPS, shift)) for t in timesteps]
