"""A small per-frame patch discriminator (PatchGAN-style) for optional adversarial VAE training."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """Strided 2D convolutions over single frames -> one realism logit per patch (``[N, 1, H/8, W/8]``)."""

    def __init__(self, width: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        c = width
        for _ in range(layers - 1):
            mods += [nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.GroupNorm(8, 2 * c), nn.LeakyReLU(0.2)]
            c *= 2
        mods.append(nn.Conv2d(c, 1, 3, padding=1))
        self.net = nn.Sequential(*mods)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, H, W]`` -> patch logits of every frame ``[B*T, 1, h, w]``."""
        return self.net(video.transpose(1, 2).flatten(0, 1))
