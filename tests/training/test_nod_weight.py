"""The listening-motion lever: nod weights follow the ground-truth nod envelope; old caches get the envelope."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from streamavatar.data.synthetic import SynthConfig, build_corpus
from streamavatar.errors import UserInputError
from streamavatar.models.vae import VideoVAE, vae_preset
from streamavatar.training.teacher import TeacherTrainConfig
from streamavatar.training.teacher_data import (
    TeacherWindows,
    build_feature_cache,
    listen_motion_weight,
)


def test_listen_motion_weight_is_the_mean_envelope_per_latent_frame():
    nod = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.2, 0.4, 0.6, 0.8], [1.0, 1.0, 1.0, 1.0]])
    w = listen_motion_weight(nod, 4.0)
    assert w.shape == (3, 1, 1)
    assert torch.allclose(w.flatten(), torch.tensor([0.0, 2.0, 4.0]))


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    from streamavatar.audio import AudioConfig, AudioFrontend

    root = tmp_path_factory.mktemp("nod")
    corpus = root / "corpus"
    build_corpus(corpus, SynthConfig(clips=2, seconds=2.0, seed=5, clips_per_identity=1, workers=1), progress=False)
    split = next(s for s in ("train", "val", "test") if (corpus / f"{s}.txt").read_text().strip())
    torch.manual_seed(0)
    vae = VideoVAE(vae_preset("tiny"))
    frontend = AudioFrontend(AudioConfig(backend="mel"))
    clips = build_feature_cache(corpus, split, vae, frontend, root / "cache", progress=False)
    return corpus, split, vae, frontend, root / "cache", clips


def test_window_weight_adds_the_nod_term_exactly(cached):
    corpus, split, vae, frontend, cache, clips = cached
    clip = clips[0]
    # Plant a nod so the test does not depend on whether the 2-second clip happened to have one.
    planted = torch.zeros_like(clip.nod)
    planted[5:13] = 1.0
    clip = type(clip)(**{**clip.__dict__, "nod": planted})
    plain = TeacherWindows([clip], frames=3, mouth_weight=2.0)[0]
    nodded = TeacherWindows([clip], frames=3, mouth_weight=2.0, nod_weight=3.0)[0]
    extra = (nodded["weight"] - plain["weight"])[:, 0, 0]
    # Latent frame f covers video frames 1 + 4f .. 4 + 4f of the window.
    expected = 3.0 * planted[1:13].reshape(3, 4).mean(dim=1)
    assert torch.allclose(extra, expected)
    assert torch.allclose(nodded["weight"] - plain["weight"], extra.view(3, 1, 1).expand_as(plain["weight"]))
    assert torch.equal(nodded["nod"], planted[:13])


def test_cache_written_without_the_nod_track_gets_it_from_the_annotations(cached):
    corpus, split, vae, frontend, cache, clips = cached
    path = next(cache.glob("*.safetensors"))
    tensors = load_file(str(path))
    tensors.pop("nod")
    save_file(tensors, str(path))  # an old-format cache file
    again = build_feature_cache(corpus, split, vae, frontend, cache, progress=False)
    clip_name = path.stem
    ann = np.load(corpus / "clips" / clip_name / "annotations.npz")
    names = [Path(line.strip()).name for line in (corpus / f"{split}.txt").read_text().splitlines() if line.strip()]
    idx = names.index(clip_name)
    got = again[idx].nod
    assert torch.allclose(got, torch.from_numpy(ann["nod"][:got.shape[0]].astype(np.float32)))


def test_negative_weights_are_refused(tmp_path):
    with pytest.raises(UserInputError, match="nod"):
        TeacherTrainConfig(data=str(tmp_path), out=str(tmp_path / "o"), nod_weight=-1.0)


def test_mouth_bump_scales_with_the_frame():
    """The mouth bump is a fixed fraction of the frame: a 256x256 frame through a stride-16 VAE (the same 16x16
    latent grid as 128x128 through stride 8, the face twice as large in pixels) gets the same weights."""
    from streamavatar.training.teacher_data import mouth_weight_map

    mouth_128 = torch.tensor([[[60.0, 90.0]] * 4, [[66.0, 92.0]] * 4])  # [F=2, 4 video frames, xy]
    w128 = mouth_weight_map(mouth_128, (16, 16), 8, 8.0)
    w256 = mouth_weight_map(2 * mouth_128, (16, 16), 16, 8.0)
    assert torch.allclose(w128, w256)
    # at 128x128 the radius is the wave-1 recipe's 8 px; an explicit radius still wins
    assert torch.allclose(w128, mouth_weight_map(mouth_128, (16, 16), 8, 8.0, radius_px=8.0))
    assert not torch.allclose(w256, mouth_weight_map(2 * mouth_128, (16, 16), 16, 8.0, radius_px=8.0))
