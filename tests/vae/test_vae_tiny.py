"""The tiny preset: geometry, normalisation, persistence, and bad input."""

from __future__ import annotations

import pytest
import torch

from streamavatar import config as sa_config
from streamavatar import constants as K
from streamavatar.errors import UserInputError
from streamavatar.models.vae import VideoVAE, build_vae, vae_preset


def test_tiny_matches_the_tiny_dit_latent_geometry():
    dit = sa_config.model_preset("tiny")
    cfg = vae_preset("tiny")
    assert cfg.latent_channels == dit.dit.latent_channels == 16
    assert cfg.spatial_stride == dit.vae_spatial_stride == K.WAN21_VAE_SPATIAL_STRIDE
    assert cfg.temporal_stride == K.VAE_TEMPORAL_STRIDE


def test_encode_decode_shapes_and_normalisation(small_tiny_vae, clip9):
    vae = small_tiny_vae()
    with torch.no_grad():
        mu, _ = vae.encode_moments(clip9)
        z = vae.encode(clip9)
        assert z.shape == (1, 16, 3, 4, 4)
        torch.testing.assert_close(z, (mu - vae.latents_mean) / vae.latents_std)
        video = vae.decode(z)
    assert video.shape == clip9.shape and video.abs().max() <= 1


def test_encoder_is_causal(small_tiny_vae, clip9):
    """Latent frame j depends only on video frames up to 4j: changing later frames leaves it unchanged."""
    vae = small_tiny_vae()
    changed = clip9.clone()
    changed[:, :, 5:] = -changed[:, :, 5:]
    with torch.no_grad():
        a, b = vae.encode(clip9), vae.encode(changed)
    assert (a[:, :, :2] - b[:, :, :2]).abs().max() <= 1e-5
    assert (a[:, :, 2] - b[:, :, 2]).abs().max() > 1e-3


def test_save_and_load_round_trip(tmp_path, small_tiny_vae, clip9):
    vae = small_tiny_vae()
    vae.save_pretrained(tmp_path / "v", dtype=torch.float32)
    back = VideoVAE.from_pretrained(tmp_path / "v", expected_preset="tiny")
    assert back.config == vae.config
    with torch.no_grad():
        torch.testing.assert_close(back.encode(clip9), vae.encode(clip9))
    with pytest.raises(UserInputError, match="expected 'wan2.1'"):
        VideoVAE.from_pretrained(tmp_path / "v", expected_preset="wan2.1")
    with pytest.raises(UserInputError, match="config.json"):
        VideoVAE.from_pretrained(tmp_path)


def test_weights_of_another_shape_are_rejected(tmp_path, small_tiny_vae):
    small_tiny_vae().save_pretrained(tmp_path / "v")
    cfg = (tmp_path / "v" / "config.json").read_text().replace('"widths": [\n   16,\n   16,\n   32\n  ]',
                                                                '"widths": [\n   16,\n   32,\n   32\n  ]')
    (tmp_path / "v" / "config.json").write_text(cfg)
    with pytest.raises(UserInputError, match="another preset"):
        VideoVAE.from_pretrained(tmp_path / "v")


@pytest.mark.parametrize("shape,needle", [
    ((1, 3, 8, 32, 32), "1 + 4k"),
    ((1, 3, 6, 32, 32), "1 + 4k"),
    ((1, 3, 5, 36, 32), "multiples of the spatial stride 8"),
    ((1, 3, 5, 32, 12), "multiples of the spatial stride 8"),
    ((1, 4, 5, 32, 32), "[B, 3, frames, H, W]"),
    ((3, 5, 32, 32), "[B, 3, frames, H, W]"),
])
def test_bad_video_raises_value_error(shape, needle, small_tiny_vae):
    vae = small_tiny_vae()
    with pytest.raises(ValueError) as info:
        vae.encode(torch.zeros(shape))
    assert isinstance(info.value, UserInputError) and needle in str(info.value)


def test_bad_latents_and_presets(small_tiny_vae):
    vae = small_tiny_vae()
    with pytest.raises(UserInputError, match="16"):
        vae.decode(torch.zeros(1, 48, 2, 4, 4))
    with pytest.raises(UserInputError, match="at least one"):
        vae.streaming_decoder().decode(torch.zeros(1, 16, 0, 4, 4))
    with pytest.raises(UserInputError, match="unknown VAE preset"):
        build_vae("wan3")
    wan22 = build_vae("wan2.2", device="meta")
    with pytest.raises(UserInputError, match="stride 16"):
        wan22.check_video(torch.zeros(1, 3, 5, 40, 40, device="meta"))


def test_patch_pca_init_makes_an_untrained_vae_a_pca_autoencoder(clip9):
    """Non-linear paths start at zero, so after ``patch_pca_`` the VAE reconstructs exactly like the PCA."""
    import torch.nn.functional as F

    from streamavatar.models.tiny_vae import TinyVAEConfig, frames_to_groups, patch_pca_
    from streamavatar.models.vae import VAEConfig

    torch.manual_seed(0)
    vae = VideoVAE(VAEConfig(**{**vae_preset("tiny").__dict__, "tiny": TinyVAEConfig(widths=(16, 16, 32),
                                                                                      groups=4)})).eval()
    # smooth video so that 16 components capture most of it
    smooth = F.interpolate(clip9.flatten(1, 2), scale_factor=0.25, mode="bilinear")
    video = F.interpolate(smooth, size=clip9.shape[-2:], mode="bilinear").view_as(clip9)
    reported = patch_pca_(vae.net, video)
    with torch.no_grad():
        recon = vae.decode(vae.encode(video))
    groups = frames_to_groups(video).flatten(0, 1)
    patches = F.pixel_unshuffle(groups, 8)
    w = vae.net.encoder.patch_in.weight.flatten(1)
    coef = torch.einsum("kd,ndhw->nkhw", w, patches - vae.net.decoder.patch_out.bias.view(1, -1, 1, 1))
    manual = F.pixel_shuffle(torch.einsum("kd,nkhw->ndhw", w, coef) + vae.net.decoder.patch_out.bias.view(1, -1, 1, 1),
                             8)
    from streamavatar.models.tiny_vae import groups_to_frames

    manual_video = groups_to_frames(manual.view(1, -1, *manual.shape[1:]), first_is_reference=True).clamp(-1, 1)
    assert (recon - manual_video).abs().max() < 1e-4
    mse = ((recon - video) / 2).pow(2).mean()
    assert abs(float(10 * torch.log10(1 / mse)) - reported) < 1.0
    assert reported > 20
