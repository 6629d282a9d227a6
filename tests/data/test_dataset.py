"""One Dataset for the synthetic corpus and folders of real videos: windows, audio alignment, broken files,
feature caching."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from streamavatar.data.dataset import AvatarClipDataset, scan_data_folder
from streamavatar.data.video_io import write_mp4
from streamavatar.errors import UserInputError


def _video(path, n, fps=25, size=(40, 48), audio="tone", seed=0):
    rng = np.random.default_rng(seed)
    frames = np.zeros((n, *size, 3), np.uint8)
    frames[:] = rng.integers(0, 255, 3)
    for i in range(n):  # a bar whose position encodes the frame index
        frames[i, :, (i * 2) % size[1]] = 255
    sr = 16000
    t = np.arange(int(n / fps * sr)) / sr
    pcm = {"tone": 0.3 * np.sin(2 * np.pi * 220 * t), "silent": np.zeros_like(t)}[audio].astype(np.float32)
    write_mp4(path, frames, fps, pcm, sr, crf=10, pix_fmt="yuv444p")
    return frames


@pytest.fixture()
def real_folder(tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / "bob").mkdir()
    _video(tmp_path / "alice" / "a1.mp4", 30)
    _video(tmp_path / "bob" / "b1.mp4", 36, fps=30, seed=1)  # resampled to 25 fps
    np.savez(tmp_path / "alice" / "a1.masks.npz", talk_mask=np.arange(30) < 10, listen_mask=np.arange(30) >= 10)
    sf.write(tmp_path / "alice" / "a1.listen.wav", np.full(30 * 640, 0.1, np.float32), 16000)
    _video(tmp_path / "silent.mp4", 30, audio="silent")
    (tmp_path / "garbage.mp4").write_bytes(b"\x00not a video" * 100)
    return tmp_path


def test_synthetic_windows(tiny_corpus):
    out, index = tiny_corpus
    ds = AvatarClipDataset(out, split=None, frames=17, verbose=False)
    assert ds.kind == "synthetic" and len(ds) == 2 * (50 // 17)
    item = ds[1]
    assert item["frames"].shape == (17, 128, 128, 3) and item["frames"].dtype == torch.uint8
    assert item["talk_audio"].shape == (17 * 640,) and item["start"] == 17
    talk_wav, _ = sf.read(out / "clips/clip_00000/talk.wav", dtype="float32")
    assert np.allclose(item["talk_audio"].numpy(), talk_wav[17 * 640: 34 * 640])
    with np.load(out / "clips/clip_00000/annotations.npz") as z:
        assert np.allclose(item["annotations"]["mouth_open"].numpy(), z["mouth_open"][17:34])
        assert np.array_equal(item["state"].numpy(), z["state"][17:34])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["frames"].shape == (2, 17, 128, 128, 3)
    train = AvatarClipDataset(out, split="train", frames=5, verbose=False)
    assert {s.split for s in train.sources} == {"train"}


def test_real_folder_same_path(real_folder):
    report = scan_data_folder(real_folder, min_frames=5)
    assert sorted(s.key for s in report.sources) == ["alice/a1.mp4", "bob/b1.mp4"]
    reasons = dict(report.broken)
    assert reasons[str(real_folder / "silent.mp4")] == "silent audio"
    assert "unreadable" in reasons[str(real_folder / "garbage.mp4")]
    ds = AvatarClipDataset(real_folder, split=None, frames=9, resolution=32, audio_context_frames=2, verbose=False)
    assert len(ds.broken) == 2 and "annotations" not in ds[0]
    a = next(ds[i] for i in range(len(ds)) if ds[i]["key"] == "alice/a1.mp4" and ds[i]["start"] == 9)
    assert a["frames"].shape == (9, 32, 32, 3)
    assert a["talk_audio"].shape == ((9 + 4) * 640,)
    assert a["talk_mask"][0] and not a["talk_mask"][1] and a["listen_mask"][1]  # frames 9, 10 of the mask file
    assert torch.allclose(a["listen_audio"], torch.full(((9 + 4) * 640,), 0.1), atol=1e-3)
    b = next(ds[i] for i in range(len(ds)) if ds[i]["key"] == "bob/b1.mp4")
    assert b["talk_mask"].all() and not b["listen_mask"].any()  # no mask file: the speaker talks throughout
    assert ds.sources[[s.key for s in ds.sources].index("bob/b1.mp4")].n_frames == 30  # 36 frames at 30 fps


def test_fps_resampling_picks_nearest_frames(tmp_path):
    frames = _video(tmp_path / "v.mp4", 60, fps=50, size=(16, 128))
    ds = AvatarClipDataset(tmp_path, split=None, frames=5, verbose=False)
    got = ds[1]["frames"].numpy()  # 25 fps window starting at frame 5 -> source frames 10, 12, ... 18
    for j, src in enumerate(range(10, 20, 2)):
        assert np.abs(got[j].astype(int) - frames[src]).mean() < 4


def test_broken_file_mid_epoch_is_skipped(real_folder):
    ds = AvatarClipDataset(real_folder, split=None, frames=5, verbose=False)
    victim = next(i for i, (si, _) in enumerate(ds.items) if ds.sources[si].key == "alice/a1.mp4")
    (real_folder / "alice" / "a1.mp4").write_bytes(b"broken now")
    item = ds[victim]
    assert item["key"] == "bob/b1.mp4"
    assert any("a1.mp4" in path for path, _ in ds.broken)


def test_no_usable_clip_is_user_error(tmp_path):
    _video(tmp_path / "silent.mp4", 10, audio="silent")
    with pytest.raises(UserInputError, match="no usable clips"):
        AvatarClipDataset(tmp_path, split=None, frames=5, verbose=False)
    with pytest.raises(UserInputError, match="1 \\+ 4k"):
        AvatarClipDataset(tmp_path, frames=6)


def test_feature_cache(tiny_corpus, tmp_path):
    out, _ = tiny_corpus
    calls = []

    def mean_colour(item):
        calls.append(item["key"])
        return {"mean": item["frames"].float().mean(dim=(1, 2)), "n": torch.tensor([len(item["frames"])])}

    kw = dict(split=None, frames=5, features={"colour": mean_colour}, cache_dir=tmp_path / "cache", verbose=False)
    ds = AvatarClipDataset(out, **kw)
    first = ds[0]["colour"]
    assert len(calls) == 1 and first["mean"].shape == (5, 3)
    again = AvatarClipDataset(out, **kw)[0]["colour"]
    assert len(calls) == 1 and torch.equal(again["mean"], first["mean"])
    assert len(list((tmp_path / "cache" / "colour").glob("*.safetensors"))) == 1
