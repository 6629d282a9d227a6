"""The on-disk corpus: files, determinism, identity-disjoint splits, mp4 fidelity, ground-truth consistency."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from streamavatar.data.synthetic import SPLITS, split_identities, synthesize_clip
from streamavatar.data.video_io import probe_video, read_audio, read_frames


def test_files_and_lengths(tiny_corpus, tiny_cfg):
    out, index = tiny_corpus
    assert [c["id"] for c in index["clips"]] == ["clip_00000", "clip_00001"]
    T = tiny_cfg.n_frames
    for c in index["clips"]:
        d = out / c["path"]
        meta = json.loads((d / "meta.json").read_text())
        assert meta["n_frames"] == T and meta["fps"] == 25 and len(meta["skin_rgb"]) == 3 and len(meta["lip_rgb"]) == 3
        assert meta["utterances"] and all(u["speaker"] in ("agent", "user") for u in meta["utterances"])
        for wav in ("talk.wav", "listen.wav"):
            audio, rate = sf.read(d / wav)
            assert rate == 16000 and audio.ndim == 1 and len(audio) == T * 640
        info = probe_video(d / "video.mp4")
        assert (info.n_frames, info.width, info.height, info.has_audio) == (T, 128, 128, True)
        assert abs(len(read_audio(d / "video.mp4")) - T * 640) <= 1024
        with np.load(d / "annotations.npz") as z:
            for k in ("mouth_open", "mouth_width", "head_yaw", "head_pitch", "head_roll", "nod", "arm_left_shoulder",
                      "arm_left_elbow", "arm_right_shoulder", "arm_right_elbow", "state", "talk_mask", "listen_mask"):
                assert z[k].shape == (T,), k
            assert z["mouth_center_xy"].shape == (T, 2) and z["face_box"].shape == (T, 4)
            assert np.all((z["face_box"][:, 3] - z["face_box"][:, 1]) >= 128 / 3)
            assert np.all(z["state"][z["nod"] > 0] == 2)
    for s in SPLITS:
        assert (out / f"{s}.txt").is_file()


def test_same_seed_same_arrays(tiny_corpus, tiny_cfg):
    out, _ = tiny_corpus
    a = synthesize_clip(tiny_cfg, 1)
    b = synthesize_clip(tiny_cfg, 1)
    assert np.array_equal(a.frames, b.frames)
    assert np.array_equal(a.conversation.agent, b.conversation.agent)
    with np.load(out / "clips/clip_00001/annotations.npz") as z:
        for k in z.files:
            assert np.array_equal(z[k], a.annotations[k]), k
    other = synthesize_clip(tiny_cfg.__class__(**{**tiny_cfg.__dict__, "seed": 8}), 1)
    assert not np.array_equal(other.frames, a.frames)


def test_mp4_matches_raw_render(tiny_corpus, tiny_cfg):
    out, _ = tiny_corpus
    raw = synthesize_clip(tiny_cfg, 0).frames
    back = read_frames(out / "clips/clip_00000/video.mp4")
    mse = np.mean((back.astype(np.float64) - raw) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) >= 35.0


def test_splits_are_disjoint_by_identity(tiny_corpus):
    for n in (1, 2, 3, 10, 57, 80):
        sp = split_identities(n, seed=1)
        assert sorted(sp) == list(range(n))
        if n >= 3:
            assert {"train", "val", "test"} <= set(sp.values())
        assert sp == split_identities(n, seed=1)
    _, index = tiny_corpus
    by_split = {s: {c["identity"] for c in index["clips"] if c["split"] == s} for s in SPLITS}
    assert not (by_split["train"] & by_split["val"]) and not (by_split["train"] & by_split["test"])
    assert not (by_split["val"] & by_split["test"])
    assert by_split == {s: set(v) for s, v in index["splits"].items()}


def test_256_clip(tiny_cfg):
    cfg = tiny_cfg.__class__(**{**tiny_cfg.__dict__, "resolution": 256, "seconds": 0.2})
    clip = synthesize_clip(cfg, 0)
    assert clip.frames.shape == (5, 256, 256, 3)
    box = clip.annotations["face_box"]
    assert np.all(box[:, 3] - box[:, 1] >= 256 / 3)
    assert np.all((clip.annotations["mouth_center_xy"] > 0) & (clip.annotations["mouth_center_xy"] < 256))
