"""``train vae --distill-from``: a tiny streaming decoder learns a (random, small) Wan VAE's latent space."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from streamavatar.data.synthetic import SynthConfig, build_corpus
from streamavatar.errors import UserInputError
from streamavatar.models.vae import VideoVAE
from streamavatar.training.vae_distill import VAEDistillConfig, train_vae_distill
from tests.vae.conftest import _small_tiny_vae, _small_wan_vae


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae_distill")
    build_corpus(root / "corpus", SynthConfig(clips=2, seconds=1.0, seed=3, clips_per_identity=1, workers=1),
                 progress=False)
    _small_wan_vae("wan2.1", seed=1).save_pretrained(root / "wan")
    return root


def _cfg(root, out, **over) -> VAEDistillConfig:
    base = dict(data=str(root / "corpus"), out=str(out), distill_from=str(root / "wan"), batch=2, frames=5, crop=32,
                lr=3e-3, max_steps=30, log_every=1, autocast="fp32")
    base.update(over)
    return VAEDistillConfig(**base)


def test_the_student_learns_the_wan_decoder_and_loads_with_its_latent_channels(setup, tmp_path):
    out = tmp_path / "run"
    result = train_vae_distill(_cfg(setup, out), progress=False)
    assert result["step"] == 30
    rows = (out / "train.csv").read_text().splitlines()
    col = rows[0].split(",").index("loss")
    losses = np.array([float(r.split(",")[col]) for r in rows[1:]])
    assert len(losses) == 30 and losses[-5:].mean() < 0.7 * losses[:5].mean(), losses
    wan = VideoVAE.from_pretrained(setup / "wan")
    student = VideoVAE.from_pretrained(out / "vae")
    assert student.config.family == "tiny" and student.config.latent_channels == wan.config.latent_channels == 16
    assert student.config.latents_mean == wan.config.latents_mean  # normalised latents mean the same to both
    clip = torch.rand(1, 3, 5, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        video = student.decode(wan.encode(clip))
    assert video.shape == clip.shape and torch.isfinite(video).all()


def test_cli_runs_on_true_frames_and_refuses_a_tiny_teacher(setup, tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "streamavatar", "train", "vae", "--distill-from", str(setup / "wan"),
                        "--distill-target", "frames", "--data", str(setup / "corpus"), "--out", str(out),
                        "--batch", "1", "--frames", "5", "--crop", "32", "--max-steps", "1", "--threads", "1",
                        "--autocast", "fp32"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["step"] == 1 and (out / "vae" / "config.json").is_file()
    _small_tiny_vae().save_pretrained(tmp_path / "tiny")
    with pytest.raises(UserInputError, match="Wan VAE"):
        train_vae_distill(_cfg(setup, tmp_path / "x", distill_from=str(tmp_path / "tiny")), progress=False)
    r = subprocess.run([sys.executable, "-m", "streamavatar", "train", "vae", "--distill-from", str(setup / "wan"),
                        "--data", str(setup / "corpus"), "--out", str(tmp_path / "y"), "--decoder-only"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--decoder-only" in r.stderr and "Traceback" not in r.stderr
