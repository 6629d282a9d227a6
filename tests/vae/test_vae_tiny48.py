"""The tiny48 preset: Wan2.2's 48 latent channels on the tiny network at Wan2.1's 4x8x8 stride."""

from __future__ import annotations

import pytest
import torch

from streamavatar.errors import UserInputError
from streamavatar.models.random_weights import randomize_
from streamavatar.models.tiny_vae import TinyVAEConfig
from streamavatar.models.vae import VAEConfig, VideoVAE, vae_preset
from streamavatar.training.vae import VAETrainConfig


def _small_tiny48(seed: int = 0) -> VideoVAE:
    base = vae_preset("tiny48")
    cfg = VAEConfig(**{**base.__dict__, "tiny": TinyVAEConfig(latent_channels=48, widths=(16, 16, 32), groups=4),
                       "latents_mean": tuple(0.01 * i for i in range(48)), "latents_std": (1.5,) * 48})
    torch.manual_seed(seed)
    vae = VideoVAE(cfg)
    randomize_(vae.net, seed=seed)
    return vae.eval()


def test_tiny48_geometry():
    cfg = vae_preset("tiny48")
    assert (cfg.family, cfg.latent_channels, cfg.spatial_stride, cfg.temporal_stride) == ("tiny", 48, 8, 4)
    assert cfg.tiny.latent_channels == 48


def test_tiny48_streaming_decode_equals_full_decode():
    torch.manual_seed(1)
    vae = _small_tiny48()
    video = torch.rand(1, 3, 13, 32, 32) * 2 - 1
    with torch.no_grad():
        z = vae.encode(video)
        assert z.shape == (1, 48, 4, 4, 4)
        full = vae.decode(z)
        dec = vae.streaming_decoder()
        parts = [dec.decode(z[:, :, :1])] + [dec.decode(z[:, :, i:i + 1]) for i in range(1, 4)]
    assert full.shape == video.shape
    assert (torch.cat(parts, dim=2) - full).abs().max() <= 1e-4


def test_tiny48_weights_do_not_load_as_tiny(tmp_path):
    _small_tiny48().save_pretrained(tmp_path / "v")
    with pytest.raises(UserInputError):
        VideoVAE.from_pretrained(tmp_path / "v", expected_preset="tiny")


def test_training_accepts_tiny_family_presets_only(tmp_path):
    VAETrainConfig(data=str(tmp_path), out=str(tmp_path / "o"), preset="tiny48").validate()
    with pytest.raises(UserInputError, match="only the tiny VAE"):
        VAETrainConfig(data=str(tmp_path), out=str(tmp_path / "o"), preset="wan2.1").validate()


def test_every_dit_preset_named_after_a_vae_preset_matches_its_latents():
    """A DiT preset that shares a tiny VAE preset's name is the DiT for those latents (channels and stride)."""
    from streamavatar.config import PRESETS

    pairs = [(name, PRESETS[name], vae_preset(name)) for name in PRESETS if name in ("tiny", "tiny48", "tiny64s16")]
    assert [p[0] for p in pairs] == ["tiny", "tiny48", "tiny64s16"]
    for _, mc, vc in pairs:
        assert mc.dit.latent_channels == vc.latent_channels and mc.vae_spatial_stride == vc.spatial_stride
    # 256x256 through the stride-16 VAE gives tiny48's 16x16 latent grid at 128x128
    assert 256 // PRESETS["tiny64s16"].vae_spatial_stride == 128 // PRESETS["tiny48"].vae_spatial_stride
