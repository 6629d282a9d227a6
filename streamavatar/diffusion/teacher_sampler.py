"""The teacher's sampler: Euler steps on the flow ODE with separate guidance for talk and listen audio.

Guidance composes three predictions (as for two nested conditions): no audio ``u``, talk only ``c_t`` and
talk + listen ``c_tl``:  ``v = u + s_talk·(c_t − u) + s_listen·(c_tl − c_t)``. With both scales 1 this is
just ``c_tl`` and one forward per step is run; otherwise the three are batched into one forward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from streamavatar.diffusion.flow import predicted_x0, reference_input, shift_sigma
from streamavatar.errors import UserInputError
from streamavatar.models.dit import AvatarDiT

#: Allowed range of guidance scales (beyond it sampling diverges or ignores the condition).
GUIDANCE_RANGE = (0.0, 20.0)


def euler_sigmas(steps: int, shift: float) -> list[float]:
    """``steps + 1`` decreasing noise levels from 1 to 0 (uniform in σ, then shifted)."""
    if steps < 1:
        raise UserInputError(f"steps must be >= 1, got {steps}")
    return [float(shift_sigma(1 - i / steps, shift)) for i in range(steps + 1)]


def guided_prediction(model: AvatarDiT, seq: torch.Tensor, t: torch.Tensor, *, talk_audio: torch.Tensor | None,
                      listen_audio: torch.Tensor | None, null_talk: torch.Tensor | None,
                      null_listen: torch.Tensor | None, talk_scale: float = 1.0, listen_scale: float = 1.0,
                      context: torch.Tensor | None = None) -> torch.Tensor:
    """The bidirectional model's output on ``seq [B, C, F, h, w]`` (reference first) with talk/listen guidance.

    ``u + s_talk·(c_t − u) + s_listen·(c_tl − c_t)`` of the raw outputs: the weights sum to one, so the
    composition is the same whether the model predicts velocity or x0 (both are affine in the output).
    Null tokens stand for "no audio" (required when that stream is given and guided).
    """
    if talk_scale == 1.0 and listen_scale == 1.0:
        return model(seq, t, talk_audio=talk_audio, listen_audio=listen_audio, context=context)

    def cat3(cond, null, listen_part: bool):
        if cond is None:
            return None
        return torch.cat([null, cond if not listen_part else null, cond], dim=0)

    talk3 = cat3(talk_audio, null_talk, listen_part=False)
    listen3 = cat3(listen_audio, null_listen, listen_part=True)
    ctx3 = None if context is None else context.repeat(3, 1, 1)
    out = model(seq.repeat(3, 1, 1, 1, 1), t.repeat(3, 1), talk_audio=talk3, listen_audio=listen3, context=ctx3)
    u, ct, ctl = out.chunk(3, dim=0)
    return u + talk_scale * (ct - u) + listen_scale * (ctl - ct)


@torch.no_grad()
def sample_teacher(model: AvatarDiT, reference: torch.Tensor, frames: int, *, talk_audio: torch.Tensor | None,
                   listen_audio: torch.Tensor | None, steps: int = 40, shift: float = 3.0,
                   talk_scale: float = 1.0, listen_scale: float = 1.0, context: torch.Tensor | None = None,
                   generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
                   null_talk: torch.Tensor | None = None, null_listen: torch.Tensor | None = None,
                   ) -> torch.Tensor:
    """Generate ``frames`` latent frames after ``reference [B, C, 1, h, w]`` with the bidirectional model.

    Audio tokens are ``[B, frames, n, audio_dim]``; ``null_talk``/``null_listen`` are the tokens that mean "no
    audio" (what training used when it dropped the condition; zeros by default). Returns ``[B, C, frames, h, w]``.
    """
    for name, s in (("talk", talk_scale), ("listen", listen_scale)):
        if not GUIDANCE_RANGE[0] <= s <= GUIDANCE_RANGE[1]:
            raise UserInputError(f"{name} guidance scale must be in {list(GUIDANCE_RANGE)}, got {s}")
    b, c, _, h, w = reference.shape
    if noise is None:  # drawn where the generator lives (reproducible across devices), used on the reference's
        gen_device = generator.device if generator is not None else reference.device
        noise = torch.randn(b, c, frames, h, w, generator=generator, device=gen_device)
    x = noise.to(reference.device)
    zt = null_talk if null_talk is not None else (torch.zeros_like(talk_audio) if talk_audio is not None else None)
    zl = null_listen if null_listen is not None else (
        torch.zeros_like(listen_audio) if listen_audio is not None else None)
    return guided_euler(model, reference, x, euler_sigmas(steps, shift), talk_audio=talk_audio,
                        listen_audio=listen_audio, null_talk=zt, null_listen=zl, talk_scale=talk_scale,
                        listen_scale=listen_scale, context=context)


@torch.no_grad()
def guided_euler(model: AvatarDiT, reference: torch.Tensor, x: torch.Tensor, sigmas: list[float], *,
                 talk_audio: torch.Tensor | None, listen_audio: torch.Tensor | None,
                 null_talk: torch.Tensor | None, null_listen: torch.Tensor | None, talk_scale: float = 1.0,
                 listen_scale: float = 1.0, context: torch.Tensor | None = None,
                 on_level: Callable[[float, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Deterministic Euler on the flow ODE from ``x`` (at ``sigmas[0]``) down the decreasing ``sigmas``, with
    talk/listen guidance (:func:`guided_prediction`); the reference is frame 0 at t = 0. Returns float32.

    Each step is written with the x0 estimate, ``x ← x0 + (σ_next/σ)·(x − x0)`` (= ``x + (σ_next − σ)·v``), so a
    last level of 0 lands on x0 exactly. ``on_level(σ, x)`` sees the state at every level before its step
    (how ODE trajectories keep the student's levels)."""
    x = x.float()
    for s_now, s_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        if on_level is not None:
            on_level(s_now, x)
        seq, t = reference_input(reference, x, s_now)
        out = guided_prediction(model, seq, t, talk_audio=talk_audio, listen_audio=listen_audio,
                                null_talk=null_talk, null_listen=null_listen, talk_scale=talk_scale,
                                listen_scale=listen_scale, context=context)[:, :, 1:].float()
        x0 = predicted_x0(out, x, s_now, model.cfg.prediction)
        x = x0 + (s_next / s_now) * (x - x0)
    return x
