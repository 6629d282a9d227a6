"""``StreamingDecoder``: decode latent frames as they arrive, keeping the VAE's causal cache between calls.

The first latent frame (the reference) yields 1 video frame, every later latent frame 4 frames, so a stream of
chunks of C latent frames gives ``1`` then ``4C`` frames per chunk - the same frames a one-pass
:meth:`VideoVAE.decode` of the concatenated latents would give.

How each family streams is its adapter's ``decode_step`` (:class:`~streamavatar.models.vae.TinyFamily`,
:class:`~streamavatar.models.vae.WanFamily`); this object owns the cache between calls.
"""

from __future__ import annotations

import torch

from streamavatar.errors import UserInputError


class StreamingDecoder:
    """Stateful chunk-by-chunk decoder bound to a :class:`~streamavatar.models.vae.VideoVAE`."""

    def __init__(self, vae) -> None:
        self.vae = vae
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next latent frame is treated as the first (reference) frame."""
        self._cache = None
        self.latent_frames_seen = 0

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decode the next ``T`` normalised latent frames ``[B, z, T, h, w]`` -> video frames in [-1, 1].

        Returns ``[B, 3, n, H, W]`` with ``n = 1 + 4(T - 1)`` for the first call of a stream, ``4T`` after.
        """
        vae = self.vae
        vae.check_latents(z)
        if z.shape[2] == 0:
            raise UserInputError("StreamingDecoder.decode needs at least one latent frame, got 0")
        raw = vae.denormalize(z)
        video, self._cache = vae.adapter.decode_step(vae.net, raw, self._cache, first=self.latent_frames_seen == 0)
        self.latent_frames_seen += z.shape[2]
        return video.clamp(-1, 1)
