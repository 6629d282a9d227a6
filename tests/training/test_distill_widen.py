"""Distillation's --init-from widens a 16-channel run into a tiny48 run (the student moving to the tiny48 VAE)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from streamavatar.config import model_preset
from streamavatar.models.audio_projector import AudioProjectorConfig, TalkListenProjector
from streamavatar.models.avatar_model import AvatarModel
from streamavatar.models.dit import AvatarDiT
from streamavatar.models.random_weights import randomize_
from streamavatar.training.distill import DistillConfig, check_teacher, load_init_run


def _write_run(folder, name: str, latent_channels: int | None = None) -> AvatarDiT:
    mc = model_preset(name)
    if latent_channels:
        mc = replace(mc, dit=replace(mc.dit, latent_channels=latent_channels))
    mc = replace(mc, dit=replace(mc.dit, prediction="x0"))
    torch.manual_seed(0)
    model = AvatarDiT(mc.dit)
    randomize_(model, seed=0)
    pc = AudioProjectorConfig.for_dit(mc.dit, window=8, num_layers=2, feature_dim=16)
    proj = TalkListenProjector(pc)
    bundle = AvatarModel(mc, pc, {"audio": {"backend": "mel"}}, kind="teacher")
    bundle.dit.load_state_dict(model.state_dict())
    bundle.projector.load_state_dict(proj.state_dict())
    bundle.save_pretrained(folder, dtype=torch.float32)
    return model


def test_init_from_a_tiny_run_is_widened_for_a_tiny48_run(tmp_path):
    old = _write_run(tmp_path / "tiny_run", "tiny")
    cfg = DistillConfig(teacher=str(tmp_path / "t"), data=str(tmp_path), out=str(tmp_path / "o"), preset="tiny48")
    model, _, info = load_init_run(tmp_path / "tiny_run", cfg)
    check_teacher(cfg, info, "--init-from")  # now a tiny48 model
    assert model.cfg.latent_channels == 48 and info["model"]["dit"]["latent_channels"] == 48
    w = model.state_dict()["patch_embedding.weight"]
    assert torch.equal(w[:, :16], old.state_dict()["patch_embedding.weight"][:, :16])
    assert w[:, 16:48].abs().max() == 0 and w[:, 49:].shape[1] == 48
    assert torch.equal(w[:, 48], old.state_dict()["patch_embedding.weight"][:, 16])  # mask channel
    assert torch.equal(w[:, 49:65], old.state_dict()["patch_embedding.weight"][:, 17:33])  # reference latent
    assert model.state_dict()["head.head.weight"][16:48].abs().max() == 0


def test_same_width_runs_load_unchanged_and_wrong_presets_are_still_refused(tmp_path):
    _write_run(tmp_path / "run48", "tiny48")
    cfg48 = DistillConfig(teacher=str(tmp_path / "t"), data=str(tmp_path), out=str(tmp_path / "o"), preset="tiny48")
    model, _, info = load_init_run(tmp_path / "run48", cfg48)
    assert model.cfg.latent_channels == 48 and info["model"]["name"] == "tiny48"
    cfg16 = replace(cfg48, preset="tiny")
    _, _, info = load_init_run(tmp_path / "run48", cfg16)  # wider than asked: not narrowed, refused by the check
    with pytest.raises(Exception, match="tiny48"):
        check_teacher(cfg16, info, "--init-from")
