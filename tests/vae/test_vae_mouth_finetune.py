"""Mouth-weighted, decoder-only fine-tuning of the tiny VAE (keeps the latent space DiTs were trained on)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from streamavatar.errors import UserInputError
from streamavatar.models.vae import bundled_vae_dir
from streamavatar.training.vae import VAETrainConfig, mouth_l1, mouth_weight_map, train_vae
from streamavatar.training.vae_data import ClipBank, split_videos

from .test_vae_cli import _write_mp4

DISC = np.array([230, 200, 40])


@pytest.fixture(scope="module")
def mouth_corpus(tmp_path_factory):
    """32x32 clips of a moving disc whose centre is annotated as the 'mouth' (corpus layout)."""
    root = tmp_path_factory.mktemp("mouth_corpus")
    yy, xx = np.mgrid[0:32, 0:32]
    for i, split in enumerate(["train", "train", "val"]):
        frames, centres = [], []
        for t in range(13):
            cx, cy = 6.0 + 1.5 * t + i, 20.0 - t + i
            disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < 9)[..., None]
            bg = np.stack([xx * 4, yy * 4, np.full_like(xx, 90)], -1)
            frames.append(np.where(disc, DISC, bg).astype(np.uint8))
            centres.append((cx, cy))
        folder = root / f"clips/clip_{i:05d}"
        _write_mp4(folder / "video.mp4", np.stack(frames))
        np.savez(folder / "annotations.npz", mouth_center_xy=np.array(centres, np.float32))
        with (root / f"{split}.txt").open("a") as f:
            f.write(f"clips/clip_{i:05d}\n")
    return root


def test_weight_map_peaks_at_the_mouth_and_ignores_unknown_frames():
    mouths = torch.tensor([[[5.0, 9.0], [float("nan"), float("nan")]]])
    w = mouth_weight_map(mouths, 16, 12, radius=2.0)
    assert w.shape == (1, 1, 2, 16, 12)
    assert tuple(np.unravel_index(int(w[0, 0, 0].argmax()), (16, 12))) == (9, 5)
    assert float(w[0, 0, 0, 9, 5]) == pytest.approx(1.0)
    assert float(w[0, 0, 1].abs().sum()) == 0.0
    x = torch.zeros(1, 3, 2, 16, 12)
    y = x.clone()
    y[:, :, 0, 9, 5] = 1.0  # an error exactly at the mouth costs more than the same error far away
    far = x.clone()
    far[:, :, 0, 0, 0] = 1.0
    assert float(mouth_l1(y, x, w)) > 100 * float(mouth_l1(far, x, w))


def test_mouth_crops_contain_the_mouth_and_track_flips(mouth_corpus):
    bank = ClipBank(split_videos(mouth_corpus, "train"))
    assert bank.has_mouths
    rng = np.random.default_rng(0)
    for _ in range(10):
        x, m = bank.sample(3, 5, rng, crop=16, mouth_fraction=1.0, with_mouths=True)
        assert x.shape == (3, 3, 5, 16, 16) and m.shape == (3, 5, 2)
        frames = ((x.permute(0, 2, 3, 4, 1) + 1) * 127.5).round().numpy()
        for b in range(3):
            cx, cy = m[b, 0].tolist()
            assert 0 <= cx < 16 and 0 <= cy < 16
            # the annotated (shifted, possibly mirrored) centre shows the disc colour
            assert np.abs(frames[b, 0, int(round(cy)), int(round(cx))] - DISC).max() < 40


def test_decoder_only_finetune_keeps_encoder_and_latent_statistics(mouth_corpus, tmp_path):
    cfg = VAETrainConfig(data=str(mouth_corpus), out=str(tmp_path / "run"), batch=1, frames=5, crop=16, max_steps=2,
                         eval_clips=1, eval_frames=9, init_from="tiny48", decoder_only=True, mouth_weight=4.0,
                         mouth_fraction=1.0, lr=1e-3, warmup_steps=1)
    torch.set_num_threads(1)
    result = train_vae(cfg, progress=False)
    assert result["steps"] == 2
    before = load_file(str(bundled_vae_dir("tiny48") / "model.safetensors"))
    after = load_file(str(tmp_path / "run" / "vae" / "model.safetensors"))
    enc = [k for k in before if "encoder" in k]
    dec = [k for k in before if "decoder" in k]
    assert enc and dec
    assert all(torch.equal(before[k], after[k]) for k in enc)
    assert any(not torch.equal(before[k], after[k]) for k in dec)
    import json

    old = json.loads((bundled_vae_dir("tiny48") / "config.json").read_text())
    new = json.loads((tmp_path / "run" / "vae" / "config.json").read_text())
    assert new["latents_mean"] == pytest.approx(old["latents_mean"]) and new["latents_std"] == pytest.approx(
        old["latents_std"])


def test_decoder_only_needs_init_and_mouth_weight_needs_annotations(tmp_path, mouth_corpus):
    with pytest.raises(UserInputError, match="--init-from"):
        VAETrainConfig(data=str(mouth_corpus), out=str(tmp_path / "a"), decoder_only=True).validate()
    plain = tmp_path / "plain"
    _write_mp4(plain / "a.mp4", np.zeros((9, 32, 32, 3), np.uint8))
    cfg = VAETrainConfig(data=str(plain), out=str(tmp_path / "b"), batch=1, frames=5, max_steps=1, mouth_weight=1.0)
    with pytest.raises(UserInputError, match="annotations"):
        train_vae(cfg, progress=False)
