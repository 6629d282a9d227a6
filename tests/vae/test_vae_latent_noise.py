"""Decoder training on noised latents (robustness to the DiT's latent errors, #22)."""

from __future__ import annotations

import pytest
import torch

from streamavatar.errors import UserInputError
from streamavatar.models.vae import VideoVAE
from streamavatar.training.vae import VAETrainConfig, noised_latents, train_vae

from .test_vae_mouth_finetune import mouth_corpus  # noqa: F401  (fixture)


def test_noise_is_per_clip_bounded_and_scaled_by_channel_std():
    z = torch.zeros(64, 3, 2, 8, 8)
    std = torch.tensor([1.0, 4.0, 0.0])
    g = torch.Generator().manual_seed(0)
    out = noised_latents(z, std, 0.5, generator=g)
    per_clip = out[:, 0].flatten(1).std(dim=1)
    assert float(per_clip.max()) < 0.5 * 1.15 and float(per_clip.min()) < 0.1  # uniform in [0, level] per clip
    assert float(per_clip.std()) > 0.05  # levels differ between clips
    ratio = float((out[:, 1].flatten(1).std(dim=1) / per_clip).median())
    assert ratio == pytest.approx(4.0, rel=0.05)
    assert float(out[:, 2].abs().max()) == 0.0
    assert noised_latents(z, std, 0.0) is z


def test_latent_noise_needs_decoder_only_and_a_valid_level(tmp_path):
    base = dict(data=str(tmp_path), out=str(tmp_path / "o"))
    with pytest.raises(UserInputError, match="--decoder-only"):
        VAETrainConfig(**base, latent_noise=0.3).validate()
    with pytest.raises(UserInputError, match="--latent-noise"):
        VAETrainConfig(**base, latent_noise=-1.0, decoder_only=True, init_from="tiny48").validate()


def test_the_decoder_is_trained_on_the_noised_latents(mouth_corpus, tmp_path, monkeypatch):  # noqa: F811
    """What reaches the decoder differs from the encoder's latents by the requested amount (and not without it)."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    encode, decode = VideoVAE.encode_moments, VideoVAE.decode_raw_train

    def spy_encode(self, video):
        mu, logvar = encode(self, video)
        seen.append((mu.detach().float(), None))
        return mu, logvar

    def spy_decode(self, z):
        seen[-1] = (seen[-1][0], z.detach().float())
        return decode(self, z)

    monkeypatch.setattr(VideoVAE, "encode_moments", spy_encode)
    monkeypatch.setattr(VideoVAE, "decode_raw_train", spy_decode)
    torch.set_num_threads(1)
    gaps = {}
    for level in (0.0, 2.0):
        seen.clear()
        cfg = VAETrainConfig(data=str(mouth_corpus), out=str(tmp_path / f"run{level}"), batch=4, frames=5, crop=16,
                             max_steps=2, eval_clips=1, eval_frames=5, init_from="tiny48", decoder_only=True,
                             latent_noise=level, lr=1e-4, warmup_steps=1)
        assert train_vae(cfg, progress=False)["steps"] == 2
        train_pairs = [(mu, z) for mu, z in seen if z is not None and mu.shape == z.shape][:2]
        std = VideoVAE.from_pretrained(tmp_path / f"run{level}" / "vae").latents_std.flatten()
        gaps[level] = max(float(((z - mu) / std.view(1, -1, 1, 1, 1)).std()) for mu, z in train_pairs)
    assert gaps[0.0] < 0.35 < gaps[2.0]
