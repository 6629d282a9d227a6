"""Teacher training: the loss goes down, kill -9 + --resume continues exactly, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from streamavatar.data.synthetic import SynthConfig, build_corpus
from streamavatar.errors import UserInputError
from streamavatar.models.vae import VideoVAE, vae_preset
from streamavatar.training.teacher import (
    TeacherTrainConfig,
    build_projector,
    flow_matching_loss,
    load_training_inputs,
    teacher_model_config,
)
from tests.training.kill_helpers import kill_9_then_resume


@pytest.fixture(scope="module")
def corpus_and_vae(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    corpus = root / "corpus"
    build_corpus(corpus, SynthConfig(clips=3, seconds=2.0, seed=11, clips_per_identity=1, workers=1),
                 progress=False)
    split = next(s for s in ("train", "val", "test") if (corpus / f"{s}.txt").read_text().strip())
    torch.manual_seed(0)
    vae_dir = root / "vae"
    VideoVAE(vae_preset("tiny")).save_pretrained(vae_dir)
    return corpus, vae_dir, split


def _cfg(corpus, vae_dir, split, out, **over) -> TeacherTrainConfig:
    base = dict(data=str(corpus), out=str(out), preset="tiny", frames=3, batch=2, lr=1e-3, vae=str(vae_dir),
                audio_backend="mel", split=split, checkpoint_every=2, mouth_weight=4.0, drop_talk=0.0,
                drop_listen=0.0, drop_reference=0.0)
    base.update(over)
    return TeacherTrainConfig(**base)


def test_loss_goes_down_on_a_fixed_batch(corpus_and_vae, tmp_path):
    corpus, vae_dir, split = corpus_and_vae
    cfg = _cfg(corpus, vae_dir, split, tmp_path / "run")
    _, frontend, windows = load_training_inputs(cfg, split, progress=False)
    assert len(windows) >= 2
    batch = {k: torch.stack([windows[0][k], windows[1][k]]) for k in windows[0]}
    assert batch["latents"].shape[2] == 4 and batch["weight"].max() > 1  # mouth weight present
    torch.manual_seed(0)
    mc = teacher_model_config(cfg)
    from streamavatar.models.dit import AvatarDiT

    model = AvatarDiT(mc.dit)
    projector, _ = build_projector(mc, frontend)
    opt = torch.optim.AdamW(list(model.parameters()) + list(projector.parameters()), lr=1e-3)
    losses = []
    for _ in range(25):
        loss, _ = flow_matching_loss(model, projector, batch, cfg, torch.Generator().manual_seed(3))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


def test_kill_9_then_resume_continues_from_the_checkpoint(corpus_and_vae, tmp_path):
    corpus, vae_dir, split = corpus_and_vae
    out = tmp_path / "run"
    common = ["train", "teacher", "--data", str(corpus), "--out", str(out), "--preset", "tiny", "--vae",
              str(vae_dir), "--audio-backend", "mel", "--batch", "1", "--checkpoint-every", "2", "--threads", "1",
              "--split", split, "--frames", "3"]
    kill_9_then_resume(common, out, timeout=240)
    info = json.loads((out / "teacher.json").read_text())
    assert info["train"]["preset"] == "tiny" and (out / "teacher.safetensors").is_file()
    assert info["resolution"] == json.loads((corpus / "index.json").read_text())["resolution"]
    # a second run into the same folder without --resume is refused
    r = subprocess.run([sys.executable, "-m", "streamavatar", *common, "--steps", "1"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr


def test_bad_config_and_data(tmp_path):
    with pytest.raises(UserInputError, match="drop_talk"):
        TeacherTrainConfig(data="x", out="y", drop_talk=1.5)
    with pytest.raises(UserInputError, match="not a corpus folder"):
        from streamavatar.training.teacher_data import _corpus_clips

        _corpus_clips(Path(tmp_path), "train")


def test_vae_and_preset_latent_channels_must_match(corpus_and_vae, tmp_path):
    corpus, vae_dir, split = corpus_and_vae
    cfg = _cfg(corpus, vae_dir, split, tmp_path / "run48", preset="tiny48")
    with pytest.raises(UserInputError, match="48"):
        load_training_inputs(cfg, split, progress=False)


def test_init_from_a_tiny_run_widens_into_tiny48(corpus_and_vae, tmp_path):
    """A 16-channel run initialises a 48-channel one (models/widen.py); the new channels start silent."""
    from safetensors.torch import load_file

    from streamavatar.training.teacher import train_teacher

    corpus, vae_dir, split = corpus_and_vae
    small = _cfg(corpus, vae_dir, split, tmp_path / "a", steps=1, checkpoint_every=1)
    train_teacher(small, progress=False)
    vae48 = tmp_path / "vae48"
    torch.manual_seed(0)
    VideoVAE(vae_preset("tiny48")).save_pretrained(vae48)
    wide = _cfg(corpus, vae48, split, tmp_path / "b", preset="tiny48", steps=1, lr=1e-12,
                init_from=str(tmp_path / "a"))
    train_teacher(wide, progress=False)
    a = load_file(str(tmp_path / "a" / "teacher.safetensors"))
    b = load_file(str(tmp_path / "b" / "teacher.safetensors"))
    assert b["dit.head.head.weight"].shape[0] == 3 * a["dit.head.head.weight"].shape[0]
    # one step at lr 1e-12 leaves the widened weights: old head rows copied, new rows zero (bf16 export)
    hw_a, hw_b = a["dit.head.head.weight"].float(), b["dit.head.head.weight"].float()
    assert torch.allclose(hw_b[:16], hw_a[:16], atol=1e-2) and hw_b[16:48].abs().max() < 1e-3
    assert json.loads((tmp_path / "b" / "teacher.json").read_text())["train"]["preset"] == "tiny48"


def test_run_resolution_reads_the_run_then_its_corpus_then_the_legacy_size(tmp_path):
    from streamavatar.training.teacher_sample import LEGACY_RESOLUTION, run_resolution

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "index.json").write_text(json.dumps({"resolution": 256}))
    assert run_resolution({"resolution": 192, "train": {"data": str(corpus)}}) == 192
    assert run_resolution({"train": {"data": str(corpus)}}) == 256  # runs written before "resolution" existed
    assert run_resolution({"train": {"data": str(tmp_path / "gone")}}) == LEGACY_RESOLUTION == 128
    assert run_resolution({"train": {}}) == 128

