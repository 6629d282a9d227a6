from __future__ import annotations

import torch

from streamavatar.config import DiTConfig
from streamavatar.models.dit import AvatarDiT
from streamavatar.models.random_weights import randomize_


def small_dit_config(**over) -> DiTConfig:
    """A DiT small enough for exact fp32 equivalence tests (every path of the tiny preset, fewer weights)."""
    base = dict(dim=64, ffn_dim=128, num_heads=2, num_layers=2, latent_channels=4, text_dim=16, freq_dim=32,
                audio_dim=24, audio_tokens_per_frame=2, reference_concat=True, mask_channels=1,
                audio_modulation=True)
    base.update(over)
    return DiTConfig(**base)


def make_model(cfg: DiTConfig | None = None, seed: int = 0) -> AvatarDiT:
    torch.manual_seed(seed)
    return randomize_(AvatarDiT(cfg or small_dit_config()), seed=seed).eval()


