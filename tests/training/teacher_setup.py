"""A tiny corpus and a random small x0 teacher run folder (mel audio), shared by the Stage 1 and Stage 2 run tests."""

from __future__ import annotations

from pathlib import Path

import torch

from streamavatar.config import ModelConfig
from streamavatar.data.synthetic import SynthConfig, build_corpus
from streamavatar.models.avatar_model import AvatarModel
from streamavatar.models.vae import VideoVAE, vae_preset
from streamavatar.training.teacher import build_projector
from tests.models.dit_helpers import make_model, small_dit_config

#: The name the teacher folder records as its preset (not a registered preset: runs pass it through).
PRESET = "test-small"
#: The frame size the random teacher records (students must inherit it).
TEACHER_RESOLUTION = 96


def build_teacher_setup(root: Path, **dit_over) -> dict:
    """A 3-clip corpus, a random tiny VAE and a random teacher under ``root``; ``dit_over`` changes the DiT."""
    from streamavatar.audio import AudioConfig, AudioFrontend
    from streamavatar.models.random_weights import randomize_

    corpus = root / "corpus"
    build_corpus(corpus, SynthConfig(clips=3, seconds=2.5, seed=5, clips_per_identity=1, workers=1), progress=False)
    split = next(s for s in ("train", "val", "test") if (corpus / f"{s}.txt").read_text().strip())
    torch.manual_seed(0)
    vae_dir = root / "vae"
    VideoVAE(vae_preset("tiny")).save_pretrained(vae_dir)
    mc = ModelConfig(name=PRESET, dit=small_dit_config(prediction="x0", latent_channels=16, **dit_over))
    model = make_model(mc.dit, seed=1)
    frontend = AudioFrontend(AudioConfig(backend="mel"))
    projector, pc = build_projector(mc, frontend)
    randomize_(projector, seed=2)
    teacher = root / "teacher"
    info = {"train": {"vae": str(vae_dir), "audio_backend": "mel", "frames": 9, "prediction": "x0",
                      "feature_cache": None}, "audio": frontend.describe(),
            # not the corpus's 128 nor the legacy default: shows that students inherit what the teacher records
            "resolution": TEACHER_RESOLUTION}
    bundle = AvatarModel(mc, pc, info, kind="teacher")
    bundle.dit.load_state_dict(model.state_dict())
    bundle.projector.load_state_dict(projector.state_dict())
    bundle.save_pretrained(teacher)
    return {"root": root, "corpus": corpus, "split": split, "teacher": teacher, "features": root / "features"}
