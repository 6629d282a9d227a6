"""AudioProjector: windows → DiT audio tokens of the right shape, accepted by AvatarDiT."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from streamavatar.config import DiTConfig, dit_preset
from streamavatar.errors import UserInputError
from streamavatar.models.audio_projector import AudioProjector, AudioProjectorConfig, TalkListenProjector
from streamavatar.models.dit import AvatarDiT


@pytest.mark.parametrize("mode", ["weighted", "concat"])
def test_tokens_for_the_tiny_preset(mode):
    torch.manual_seed(0)
    cfg = AudioProjectorConfig.for_dit(dit_preset("tiny"), window=8, num_layers=5, feature_dim=384,
                                       hidden_dim=64, layer_mode=mode)
    proj = AudioProjector(cfg)
    out = proj(torch.randn(2, 6, 8, 5, 384))
    assert out.shape == (2, 6, 4, 256)
    assert cfg.in_features == (8 * 384 if mode == "weighted" else 8 * 5 * 384)
    if mode == "weighted":
        torch.testing.assert_close(proj.layer_weights(), torch.full((5,), 0.2))
    out.square().mean().backward()
    assert all(p.grad is not None for p in proj.parameters())


def test_wan_preset_widths():
    cfg = AudioProjectorConfig.for_dit(dit_preset("wan2.2-ti2v-5b"), 8, 5, 384)
    assert (cfg.n_tokens, cfg.audio_dim) == (4, 768)


def test_frames_are_projected_independently():
    torch.manual_seed(0)
    proj = AudioProjector(AudioProjectorConfig(8, 2, 16, 4, 32, hidden_dim=32))
    x = torch.randn(1, 3, 8, 2, 16)
    y = x.clone()
    y[:, 2] = torch.randn(8, 2, 16)
    a, b = proj(x), proj(y)
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2], b[:, 2])


def test_bad_window_shape():
    proj = AudioProjector(AudioProjectorConfig(8, 2, 16, 4, 32))
    with pytest.raises(UserInputError, match="audio windows"):
        proj(torch.randn(1, 3, 7, 2, 16))
    with pytest.raises(ValueError):
        AudioProjectorConfig(8, 2, 16, 4, 32, layer_mode="mean")


def test_talk_listen_tokens_drive_the_dit():
    torch.manual_seed(0)
    dit_cfg = DiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=1, latent_channels=4, text_dim=16,
                        audio_dim=32, audio_tokens_per_frame=4, prediction="x0")
    dit = AvatarDiT(dit_cfg).eval()
    torch.nn.init.normal_(dit.head.head.weight, std=0.1)  # zero-initialised output head
    for blk in dit.blocks:  # the audio attention starts as a no-op; open it so the tokens matter
        torch.nn.init.normal_(blk.talk_audio_attn.o.weight, std=0.1)
        torch.nn.init.normal_(blk.listen_audio_attn.o.weight, std=0.1)
    proj = TalkListenProjector(AudioProjectorConfig.for_dit(dit_cfg, 8, 2, 16, hidden_dim=32))
    windows = torch.randn(1, 3, 8, 2, 16)
    talk, listen = proj(windows, torch.zeros_like(windows))
    x, t = torch.randn(1, 4, 4, 4, 4), torch.tensor([[0.0, 500.0, 500.0, 500.0]])
    with torch.no_grad():
        out = dit(x, t, talk_audio=talk, listen_audio=listen)
        silent = dit(x, t, talk_audio=proj.talk(torch.zeros_like(windows)), listen_audio=listen)
    assert out.shape == x.shape
    assert (out - silent).abs().max() > 0


def test_models_package_imports_stay_inside():
    src = Path(__file__).parents[2] / "streamavatar" / "models" / "audio_projector.py"
    allowed = ("streamavatar.models", "streamavatar.config", "streamavatar.constants", "streamavatar.errors")
    for node in ast.walk(ast.parse(src.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("streamavatar"):
            assert node.module.startswith(allowed), node.module
