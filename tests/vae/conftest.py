"""Shared helpers for the VAE tests: tiny deterministic configs and clips."""

from __future__ import annotations

import pytest
import torch

from streamavatar.models.random_weights import randomize_
from streamavatar.models.tiny_vae import TinyVAEConfig
from streamavatar.models.vae import VAEConfig, VideoVAE, vae_preset


def _small_tiny_vae(seed: int = 0) -> VideoVAE:
    """The tiny architecture at a narrower width, every parameter random (zero-init paths carry signal)."""
    cfg = VAEConfig(**{**vae_preset("tiny").__dict__, "tiny": TinyVAEConfig(widths=(16, 16, 32), groups=4),
                       "latents_mean": tuple(0.1 * i for i in range(16)), "latents_std": (2.0,) * 16})
    torch.manual_seed(seed)
    vae = VideoVAE(cfg)
    randomize_(vae.net, seed=seed)
    return vae.eval()


def _small_wan_vae(family: str = "wan2.1", seed: int = 0) -> VideoVAE:
    """Wan2.1/2.2 architecture (diffusers) at base width 8, random weights."""
    base = vae_preset(family)
    kw = dict(base.wan_kwargs)
    kw["base_dim"] = 8
    if "decoder_base_dim" in kw:
        kw["decoder_base_dim"] = 8
    cfg = VAEConfig(**{**base.__dict__, "wan_kwargs": kw})
    torch.manual_seed(seed)
    vae = VideoVAE(cfg)
    randomize_(vae.net, seed=seed, scale=1.0)
    return vae.eval()


@pytest.fixture
def small_tiny_vae():
    """Factory of small random tiny-architecture VAEs."""
    return _small_tiny_vae


@pytest.fixture
def small_wan_vae():
    """Factory of small random Wan-architecture VAEs (``family`` = wan2.1 | wan2.2)."""
    return _small_wan_vae


@pytest.fixture
def clip9() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(1, 3, 9, 32, 32, generator=g) * 2 - 1
