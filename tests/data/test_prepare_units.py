"""data prepare's pieces that need no face tracker: frame-rate resampling, shot/run planning, filters, crops,
shard specs and the CLI's one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from streamavatar.data.prepare import PrepareConfig, Track, iter_frames, parse_shard, plan_clips
from streamavatar.data.real_fixtures import write_video
from streamavatar.errors import UserInputError


def _numbered(n: int, size=(48, 64)) -> np.ndarray:
    """Frames whose mean grey level encodes their index."""
    return np.stack([np.full((*size, 3), 4 * i, np.uint8) for i in range(n)])


@pytest.mark.parametrize("fps", [30, 24, 50, 25])
def test_iter_frames_resamples_to_25_fps_by_time(tmp_path, fps):
    n = fps  # 1 s
    path = tmp_path / f"v{fps}.mp4"
    write_video(path, _numbered(n), fps, [])
    got = list(iter_frames(path, 25))
    assert [k for k, _ in got] == list(range(25))
    idx = np.array([round(float(f.mean()) / 4) for _, f in got])
    # output frame k (time k/25) shows the last source frame started at or before it
    expect = np.floor(np.arange(25) * fps / 25 + 1e-6).astype(int)
    assert np.abs(idx - expect).max() <= 0, (idx, expect)


def _track(n: int, heights: np.ndarray, cuts=(0,), luma=120.0) -> Track:
    rng = np.random.default_rng(0)
    found = np.isfinite(heights)
    cx = 320 + 3 * np.sin(np.arange(n) / 10) + rng.normal(0, 1.5, n)  # landmark noise of 1.5 px
    cy = 150 + rng.normal(0, 1.5, n)
    center = np.stack([cx, cy], 1).astype(np.float32)
    center[~found] = np.nan
    box = np.concatenate([center - 40, center + 40], 1)
    return Track(center, heights.astype(np.float32), box, np.full(n, 5.0, np.float32), center.copy(),
                 np.full(n, 30.0, np.float32), np.full(n, luma, np.float32), list(cuts), 640, 360)


def test_plan_clips_filters_with_reasons():
    n = 400
    h = np.full(n, 100.0)
    h[100:140] = np.nan          # 1.6 s without a face
    h[150:153] = np.nan          # a 3-frame gap: interpolated, not a drop
    h[300:] = 20.0               # face too small
    plans, drops = plan_clips(_track(n, h, cuts=(0, 260, 300)), PrepareConfig(min_seconds=2.0), "v.mp4")
    reasons = {(d.reason, d.start_s, d.end_s) for d in drops}
    assert ("no face", 4.0, 5.6) in reasons
    assert ("face too small", 12.0, 16.0) in reasons
    assert ("cut too short", 10.4, 12.0) in reasons  # the shot 260..300 is 1.6 s
    assert [(p.start, p.end) for p in plans] == [(0, 100), (140, 260)]
    dark_plans, dark = plan_clips(_track(n, np.full(n, 100.0), luma=10.0), PrepareConfig(), "v.mp4")
    assert not dark_plans and {d.reason for d in dark} == {"too dark"}


def test_long_runs_split_and_crops_are_smooth_and_inside_the_frame():
    n = 1000
    cfg = PrepareConfig(max_seconds=15.0)
    tr = _track(n, np.full(n, 100.0))
    plans, _ = plan_clips(tr, cfg, "v.mp4")
    assert sorted(p.end - p.start for p in plans) == [333, 333, 334] and plans[-1].end == n
    for p in plans:
        side = p.crop[:, 2]
        assert np.all(side == side[0]) and abs(side[0] - 260) < 1e-6
        assert np.all(p.crop[:, 0] - side / 2 >= 0) and np.all(p.crop[:, 0] + side / 2 <= 640)
        assert np.all(p.crop[:, 1] - side / 2 >= 0) and np.all(p.crop[:, 1] + side / 2 <= 360)
        step = np.abs(np.diff(p.crop[:, 0])) * 128 / side[0]
        assert step.max() < 0.2  # output pixels per frame: the 1.5 px landmark noise is gone
    raw = plan_clips(tr, PrepareConfig(max_seconds=15.0, smooth_seconds=0), "v.mp4")[0][0]
    assert np.abs(np.diff(raw.crop[:, 0])).max() * 128 / 260 > 1.0  # unsmoothed it would shake


def test_parse_shard(monkeypatch):
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(UserInputError, match="--shard"):
            parse_shard(bad)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert parse_shard(None) == (2, 4)
    monkeypatch.delenv("WORLD_SIZE")
    assert parse_shard(None) == (0, 1)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamavatar", "data", "prepare", *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_errors_are_one_line(tmp_path):
    r = _cli("--videos", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "empty").mkdir()
    r = _cli("--videos", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "no videos" in r.stderr
    r = _cli("--videos", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--shard", "2/2")
    assert r.returncode == 2 and "--shard" in r.stderr
    r = _cli("--videos", str(tmp_path / "empty"), "--out", str(tmp_path / "empty" / "o"))
    assert r.returncode == 2 and "inside it" in r.stderr
    r = _cli("--videos", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--resolution", "100")
    assert r.returncode == 2 and "multiple of 16" in r.stderr
    assert all(len(x.stderr.strip().splitlines()) == 1 for x in [r])
