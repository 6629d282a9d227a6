"""The feature-cache key follows what cached features depend on: encoder weights, latent statistics, audio."""

from __future__ import annotations

import torch

from streamavatar.models.vae import load_vae
from streamavatar.training.teacher_data import features_key

AUDIO = {"backend": "whisper-tiny", "layers": 5}


def test_decoder_changes_keep_the_key_encoder_and_statistics_changes_do_not():
    vae = load_vae("tiny48", dtype=torch.float32)
    key = features_key("tiny48", vae, AUDIO)
    with torch.no_grad():
        next(p for n, p in vae.named_parameters() if "decoder" in n).add_(1.0)
    assert features_key("tiny48", vae, AUDIO) == key
    with torch.no_grad():
        next(p for n, p in vae.named_parameters() if "encoder" in n).add_(1.0)
    changed = features_key("tiny48", vae, AUDIO)
    assert changed != key
    vae.set_latent_stats(vae.latents_mean.flatten() + 0.5, vae.latents_std.flatten())
    assert features_key("tiny48", vae, AUDIO) != changed
    assert features_key("tiny48", vae, {**AUDIO, "layers": 4}) != features_key("tiny48", vae, AUDIO)
