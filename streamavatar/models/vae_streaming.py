"""``StreamingDecoder``: decode latent frames as they arrive, keeping the VAE's causal cache between calls.

The first latent frame (the reference) yields 1 video frame, every later latent frame 4 frames, so a stream of
chunks of C latent frames gives ``1`` then ``4C`` frames per chunk - the same frames a one-pass
:meth:`VideoVAE.decode` of the concatenated latents would give.

* tiny preset: the cache is one tensor per ``CausalTimeMix`` layer; a chunk goes through in one batched call.
* Wan presets: diffusers' decoder is driven one latent frame at a time with a ``feat_cache`` list that this
  object owns (``decode()`` in diffusers clears its cache at start and end, so it cannot stream itself); the
  first latent frame is run with ``first_chunk=True`` exactly as diffusers' own decode loop does.
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
        if vae.config.family == "tiny":
            video, self._cache = vae.net.decode_step(raw, self._cache)
        else:
            video = self._decode_wan(raw)
        self.latent_frames_seen += z.shape[2]
        return video.clamp(-1, 1)

    def _decode_wan(self, raw: torch.Tensor) -> torch.Tensor:
        from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

        net = self.vae.net
        if self._cache is None:
            self._cache = [None] * net._cached_conv_counts["decoder"]
        x = net.post_quant_conv(raw)
        outs = []
        for i in range(x.shape[2]):
            first = self.latent_frames_seen == 0 and i == 0
            outs.append(net.decoder(x[:, :, i:i + 1], feat_cache=self._cache, feat_idx=[0], first_chunk=first))
        out = torch.cat(outs, dim=2)
        if net.config.patch_size is not None:
            out = unpatchify(out, patch_size=net.config.patch_size)
        return out
