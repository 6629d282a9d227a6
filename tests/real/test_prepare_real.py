"""data prepare on real faces: layouts, talk/listen attribution, crop stability, the clip format, determinism
and shard merge (``[real]`` extra: mediapipe's offline FaceMesh)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("mediapipe", reason="the [real] extra (mediapipe 0.10.21) is not installed")
pytest.importorskip("skimage", reason="the [real] extra (scikit-image) is not installed")

from streamavatar.data.dataset import AvatarClipDataset  # noqa: E402
from streamavatar.data.prepare import PrepareConfig, prepare_folder  # noqa: E402
from streamavatar.data.speaker_attribution import attribution_accuracy  # noqa: E402
from streamavatar.data.video_io import read_frames  # noqa: E402
from tests.real.helpers import clip_entries, load_ann  # noqa: E402

KEYS = {"mouth_open", "mouth_open_px", "mouth_center_xy", "face_box", "talk_mask", "listen_mask", "state", "nod",
        "agent_energy", "user_energy", "speaker_confidence", "face_found"}


def test_every_layout_gives_a_corpus_clip(prepared, conv):
    index = json.loads((prepared / "index.json").read_text())
    assert index["format"] == "streamavatar-real-v1"
    entries = clip_entries(prepared)
    assert set(entries) == {"astronaut_tracks", "hopper_wavs", "astronaut_mixed", "hopper_mixed"}
    layouts = {k: e["layout"] for k, e in entries.items()}
    assert layouts == {"astronaut_tracks": "two-tracks", "hopper_wavs": "wav-pair", "astronaut_mixed": "mixed",
                       "hopper_mixed": "mixed"}
    for e in entries.values():
        folder = prepared / e["path"]
        ann = load_ann(prepared, e)
        n = e["n_frames"]
        assert n == conv.n_frames == 200  # 8 s at 25 fps from 30, 25 and 24 fps sources
        assert KEYS <= set(ann) and all(len(v) == n for v in ann.values())
        frames = read_frames(folder / "video.mp4")
        assert frames.shape == (n, 128, 128, 3)
        for w in ("talk.wav", "listen.wav"):
            a, sr = sf.read(folder / w, dtype="float32")
            assert sr == 16000 and len(a) == n * 640
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["kind"] == "real" and meta["face_found_fraction"] == 1.0
        # the mouth is where the annotation says: inside the face box, in its lower half
        x0, y0, x1, y1 = np.median(ann["face_box"], 0)
        mx, my = np.median(ann["mouth_center_xy"], 0)
        assert x0 < mx < x1 and (y0 + y1) / 2 < my < y1
    assert (prepared / "train.txt").read_text().count("clips/") == 4


def test_separate_tracks_are_used_as_they_are(prepared, conv):
    entries = clip_entries(prepared)
    for stem in ("astronaut_tracks", "hopper_wavs"):
        folder = prepared / entries[stem]["path"]
        talk, _ = sf.read(folder / "talk.wav", dtype="float32")
        listen, _ = sf.read(folder / "listen.wav", dtype="float32")
        assert np.corrcoef(talk, conv.agent)[0, 1] > 0.95
        assert np.corrcoef(listen, conv.partner)[0, 1] > 0.95
        ann = load_ann(prepared, entries[stem])
        acc = attribution_accuracy(ann["talk_mask"], ann["listen_mask"], conv.agent_mask, conv.partner_mask)
        assert acc["accuracy"] > 0.95, acc


def test_mixed_track_is_attributed_by_the_moving_mouth(prepared, conv):
    entries = clip_entries(prepared)
    for stem in ("astronaut_mixed", "hopper_mixed"):
        ann = load_ann(prepared, entries[stem])
        acc = attribution_accuracy(ann["talk_mask"], ann["listen_mask"], conv.agent_mask, conv.partner_mask)
        assert acc["accuracy"] >= 0.9 and acc["avatar_recall"] >= 0.9 and acc["partner_recall"] >= 0.9, (stem, acc)
        meta = json.loads((prepared / entries[stem]["path"] / "meta.json").read_text())
        assert meta["attribution"] and all(0 <= s["confidence"] <= 1 for s in meta["attribution"])
        folder = prepared / entries[stem]["path"]
        talk, _ = sf.read(folder / "talk.wav", dtype="float32")
        assert np.corrcoef(talk, conv.agent)[0, 1] > 0.8  # the mixed signal gated to the avatar's segments
    report = json.loads((prepared / "prepare_report.json").read_text())
    assert set(report["attribution"]) == {"astronaut_mixed.mp4", "hopper_mixed.mp4"}


def test_crop_is_stable(prepared):
    for e in clip_entries(prepared).values():
        ann = load_ann(prepared, e)
        crop = ann["crop_xy_side"].astype(np.float64)
        scale = 128 / crop[0, 2]
        step = np.abs(np.diff(crop[:, :2], axis=0)).max() * scale
        assert step < 0.25, (e["id"], step)  # output px per frame
        centre = (ann["face_box"][:, :2] + ann["face_box"][:, 2:]) / 2
        from scipy.ndimage import uniform_filter1d

        jitter = np.abs(centre - uniform_filter1d(centre, 9, axis=0, mode="nearest")).mean()
        assert jitter < 0.6, (e["id"], jitter)  # face-centre jitter in the output frames, px


def test_the_dataset_reads_a_prepared_folder(prepared):
    ds = AvatarClipDataset(prepared, split="train", frames=17, verbose=False)
    assert ds.kind == "prepared" and ds.has_annotations and len(ds) == 4 * (200 // 17)
    item = ds[0]
    assert item["frames"].shape == (17, 128, 128, 3) and item["talk_audio"].shape == (17 * 640,)
    assert "mouth_open" in item["annotations"] and item["identity"].startswith("real-")


def test_shards_merge_into_the_one_process_result(prepared, layouts, tmp_path):
    out = tmp_path / "sharded"
    first = prepare_folder(layouts, out, PrepareConfig(split="train"), shard=(1, 2), progress=False)
    assert "merged" not in first and not (out / "index.json").exists()
    second = prepare_folder(layouts, out, PrepareConfig(split="train"), shard=(0, 2), progress=False)
    assert second["merged"] and second["clips_total"] == 4
    for name in ("index.json", "prepare_report.json", "train.txt", "val.txt", "test.txt"):
        assert (out / name).read_text() == (prepared / name).read_text(), name
    for e in clip_entries(prepared).values():
        a, b = prepared / e["path"], out / e["path"]
        for f in ("talk.wav", "listen.wav", "meta.json"):
            assert (a / f).read_bytes() == (b / f).read_bytes(), (e["id"], f)
        za, zb = np.load(a / "annotations.npz"), np.load(b / "annotations.npz")
        assert set(za.files) == set(zb.files) and all(np.array_equal(za[k], zb[k]) for k in za.files)
        assert np.array_equal(read_frames(a / "video.mp4"), read_frames(b / "video.mp4"))


def test_refuses_a_finished_folder_and_mixed_shard_counts(prepared, layouts, tmp_path):
    from streamavatar.errors import UserInputError

    with pytest.raises(UserInputError, match="already holds"):
        prepare_folder(layouts, prepared, PrepareConfig(), progress=False)
    out = tmp_path / "o"
    (out / "shards").mkdir(parents=True)
    shutil.copy(prepared / "shards" / "0-of-1.json", out / "shards" / "0-of-1.json")
    with pytest.raises(UserInputError, match="another run"):
        prepare_folder(layouts, out, PrepareConfig(), shard=(0, 2), progress=False)
