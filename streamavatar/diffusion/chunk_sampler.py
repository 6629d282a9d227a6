"""The streaming student's sampler: N denoising steps per chunk, chunk after chunk, with the KV cache.

Between steps the x0 prediction is re-noised to the next level with fresh noise (Self-Forcing's few-step
sampler, anchors-models §2.2). The cache keeps the keys/values of each chunk's last denoising pass
(``cache_refresh="last_step"``, the paper's saving of one forward per chunk) or of an extra pass on the clean
result at t = 0 (``"clean_pass"``, Self-Forcing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from streamavatar.config import StreamConfig
from streamavatar.diffusion.flow import add_noise, few_step_sigmas, predicted_x0, sigma_to_timestep
from streamavatar.errors import UserInputError
from streamavatar.models.dit import AvatarDiT
from streamavatar.models.kv_cache import StreamingKVCache

#: A source of Gaussian noise shaped like its argument (lets training rollouts replay inference exactly).
NoiseFn = Callable[[tuple[int, ...]], torch.Tensor]


@dataclass
class StreamState:
    """One stream's state: its cache, reference latent, text context and the next latent frame index."""

    cache: StreamingKVCache
    reference: torch.Tensor
    context: torch.Tensor | None
    next_frame: int = 1

    @property
    def chunks_done(self) -> int:
        return (self.next_frame - 1) // self.cache.stream.chunk_frames


class ChunkSampler:
    """Few-step chunk-wise sampling with a :class:`StreamingKVCache` (Reference Sink + window + RAPR)."""

    def __init__(self, model: AvatarDiT, stream: StreamConfig) -> None:
        self.model = model
        self.stream = stream
        self.sigmas = few_step_sigmas(stream.timesteps, stream.shift)

    @torch.no_grad()
    def start(self, reference: torch.Tensor, context: torch.Tensor | None = None) -> StreamState:
        """Begin a stream: write the reference latent ``[B, C, 1, H, W]`` (t = 0) into the Reference Sink."""
        if reference.ndim != 5 or reference.shape[2] != 1:
            raise UserInputError(f"reference latent must be [B, C, 1, H, W], got {tuple(reference.shape)}")
        b, _, _, h, w = reference.shape
        cache = self.model.new_cache(self.stream, b, h, w, device=reference.device)
        t0 = torch.zeros(b, 1, device=reference.device)
        self.model.forward_chunk(reference, t0, cache, [0], commit=True, context=context, reference=reference,
                                 reference_frames=1)
        return StreamState(cache=cache, reference=reference, context=context)

    @torch.no_grad()
    def next_chunk(self, state: StreamState, *, talk_audio: torch.Tensor | None = None,
                   listen_audio: torch.Tensor | None = None, noise: NoiseFn | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Generate the next chunk of ``chunk_frames`` latent frames, ``[B, C, chunk, H, W]`` (float32).

        Audio tokens are ``[B, chunk, n, audio_dim]``. Noise comes from ``noise(shape)`` if given, else from
        ``generator``.
        """
        return self.denoise_chunk(state, talk_audio=talk_audio, listen_audio=listen_audio, noise=noise,
                                  generator=generator)[0]

    def denoise_chunk(self, state: StreamState, *, talk_audio: torch.Tensor | None = None,
                      listen_audio: torch.Tensor | None = None, noise: NoiseFn | None = None,
                      generator: torch.Generator | None = None, grad_step: int | None = None,
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`next_chunk` with an optional step that carries gradients (self-forcing training).

        Returns ``(x0 of the last step, x0 of step grad_step or None)``. Every step runs exactly as at inference
        (same noise draws, same cache writes); only the forward of step ``grad_step`` is recorded by autograd,
        and only when the caller has gradients enabled (its input and the cached keys/values are detached), so a
        training rollout is the inference rollout.
        """
        record = torch.is_grad_enabled()
        c = self.stream.chunk_frames
        if grad_step is not None and not 0 <= grad_step < len(self.sigmas):
            raise ValueError(f"grad_step must be in [0, {len(self.sigmas)}), got {grad_step}")
        b, ch, _, h, w = state.reference.shape
        shape = (b, ch, c, h, w)
        draw = noise or (lambda s: torch.randn(s, generator=generator, device=state.reference.device))
        frames = list(range(state.next_frame, state.next_frame + c))
        x = draw(shape)
        x0 = x
        x0_grad = None
        for i, sigma in enumerate(self.sigmas):
            last = i == len(self.sigmas) - 1
            t = torch.full((b, c), float(sigma_to_timestep(sigma)), device=x.device)
            with torch.set_grad_enabled(record and i == grad_step):
                out = self.model.forward_chunk(
                    x, t, state.cache, frames, commit=last and self.stream.cache_refresh == "last_step",
                    talk_audio=talk_audio, listen_audio=listen_audio, context=state.context,
                    reference=state.reference)
                x0 = predicted_x0(out, x.float(), sigma, self.model.cfg.prediction)
            if i == grad_step:
                x0_grad = x0
                x0 = x0.detach()
            if not last:
                x = add_noise(x0, draw(shape), self.sigmas[i + 1])
        if self.stream.cache_refresh == "clean_pass":
            with torch.no_grad():
                self.model.forward_chunk(x0, torch.zeros(b, c, device=x0.device), state.cache, frames, commit=True,
                                         talk_audio=talk_audio, listen_audio=listen_audio, context=state.context,
                                         reference=state.reference)
        state.next_frame += c
        return x0, x0_grad
