"""The trained VAE shipped in streamavatar/assets/vae/tiny48, and the error for one that is not shipped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamavatar.errors import UserInputError
from streamavatar.eval.image_metrics import psnr
from streamavatar.models.vae import bundled_vae_dir, load_vae


def _cartoon_clip() -> torch.Tensor:
    """A flat background with a moving disc, 9 frames, 64x64, in [-1, 1]."""
    yy, xx = np.mgrid[0:64, 0:64]
    frames = []
    for t in range(9):
        disc = ((xx - 24 - t) ** 2 + (yy - 32) ** 2 < 144)[..., None]
        frames.append(np.where(disc, np.array([200, 120, 90]), np.array([210, 180, 220])))
    x = torch.from_numpy(np.stack(frames).astype(np.float32)).permute(3, 0, 1, 2)[None]
    return x / 127.5 - 1


def test_bundled_vae_loads_reconstructs_and_streams_exactly():
    assert (bundled_vae_dir("tiny48") / "model.safetensors").stat().st_size < 16e6
    vae = load_vae(dtype=torch.float32)  # the default is the bundled tiny48
    assert vae.config.name == "tiny48" and vae.latents_std.min() > 0
    x = _cartoon_clip()
    with torch.no_grad():
        z = vae.encode(x)
        full = vae.decode(z)
    assert z.shape == (1, 48, 3, 8, 8)
    assert 0.2 < float(z.std()) < 5  # normalised latents are of unit scale, roughly
    assert float(psnr(full, x)[0]) > 25
    dec = vae.streaming_decoder()
    streamed = torch.cat([dec.decode(z[:, :, :1]), dec.decode(z[:, :, 1:2]), dec.decode(z[:, :, 2:])], dim=2)
    assert (streamed - full).abs().max() <= 1e-4


def test_a_preset_without_bundled_weights_is_a_clear_error_with_the_way_back():
    assert not (bundled_vae_dir("tiny") / "config.json").exists()
    with pytest.raises(UserInputError, match=r"no trained 'tiny' VAE is bundled.*git show \w+:streamavatar/assets/vae"):
        load_vae("tiny")
