"""Lip sync measured on real faces: a landmark mouth-opening measure and its agreement with the voice.

The corpus measure (:mod:`streamavatar.eval.mouth_measure`) segments the renderer's lip colours and only works
on corpus avatars. This one works on any face FaceMesh finds (``[real]`` extra):

* **mouth opening** per frame = mean inner-lip gap of the three centre landmark pairs / face height (forehead
  to chin), mapped to the corpus's 0 (closed) .. 1 (widest) scale by :func:`streamavatar.data.prepare
  .calibrated_open` (a linear map, so correlations do not depend on it);
* **vs the voice**: Pearson r between the opening and the talk voice's energy envelope (per-frame RMS, square
  root, 3-frame smoothing), at lag 0 and at the best lag in ``[-MAX_LAG, MAX_LAG]`` frames (positive = the
  mouth moves after the sound), over every tracked frame and over the voiced frames only;
* **vs the source video**: Pearson r and mean absolute difference between the generated clip's opening and
  the opening measured the same way on the video it imitates (a prepared real clip's own ``video.mp4``).

:func:`real_lip_sync` scores one video; :func:`evaluate_real_folder` is ``eval run`` for a prepared real folder.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

from streamavatar.errors import UserInputError
from streamavatar.eval.lip_sync import mouth_agreement
from streamavatar.eval.stats import pearson_r

MAX_LAG = 5
HOP = 640


@dataclass
class RealMouth:
    """Per-frame landmark mouth measurements of one video (values interpolated over untracked frames)."""

    ratio: np.ndarray        # [T] inner-lip gap / face height
    open: np.ndarray         # [T] calibrated 0..1
    valid: np.ndarray        # [T] bool: FaceMesh found the face
    center_xy: np.ndarray    # [T, 2] inner-lip midpoint (px)
    face_height: np.ndarray  # [T] px

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean()) if len(self.valid) else 0.0


def measure_real_mouth(frames: np.ndarray) -> RealMouth:
    """Track a face through uint8 ``[T, H, W, 3]`` frames (one shot) and measure its mouth in every frame."""
    from streamavatar.data.face_track import FaceMeshTracker, face_geometry
    from streamavatar.data.prepare import calibrated_open

    T = len(frames)
    ratio = np.full(T, np.nan)
    cxy = np.full((T, 2), np.nan)
    fh = np.full(T, np.nan)
    with FaceMeshTracker() as tracker:
        for t, f in enumerate(frames):
            lm = tracker(f)
            if lm is not None:
                g = face_geometry(lm)
                ratio[t], cxy[t], fh[t] = g.mouth_gap / max(g.height, 1e-6), g.mouth_center, g.height
    valid = np.isfinite(ratio)
    if valid.any():
        idx, ts = np.flatnonzero(valid), np.arange(T)
        ratio = np.interp(ts, idx, ratio[idx])
        fh = np.interp(ts, idx, fh[idx])
        cxy = np.stack([np.interp(ts, idx, cxy[idx, j]) for j in range(2)], 1)
    else:
        ratio, fh, cxy = np.zeros(T), np.zeros(T), np.zeros((T, 2))
    return RealMouth(ratio.astype(np.float32), calibrated_open(ratio).astype(np.float32), valid,
                     cxy.astype(np.float32), fh.astype(np.float32))


def energy_envelope(audio: np.ndarray, n_frames: int, sample_rate: int = 16000) -> np.ndarray:
    """Per-frame voice energy (sqrt of the RMS over each 25 fps frame, smoothed over 3 frames) of mono audio."""
    audio = np.asarray(audio, np.float32)
    if sample_rate != 16000:
        from scipy.signal import resample_poly

        g = np.gcd(int(sample_rate), 16000)
        audio = resample_poly(audio, 16000 // g, int(sample_rate) // g).astype(np.float32)
    from streamavatar.data.speaker_attribution import frame_energy

    return uniform_filter1d(np.sqrt(frame_energy(audio, n_frames, HOP)), 3, mode="nearest").astype(np.float32)


def lagged_r(mouth: np.ndarray, energy: np.ndarray, mask: np.ndarray, max_lag: int = MAX_LAG) -> dict:
    """r at lag 0 and the best r over lags ``-max_lag..max_lag`` (lag > 0: mouth[t] against energy[t - lag])."""
    out: dict = {"r": None, "best_r": None, "best_lag": None, "frames": int(mask.sum())}
    if mask.sum() < 5:
        return out
    rs = {}
    n = len(mouth)
    for lag in range(-max_lag, max_lag + 1):
        t = np.arange(max(0, lag), min(n, n + lag))
        m = mask[t] & mask[t - lag]
        if m.sum() >= 5:
            rs[lag] = pearson_r(mouth[t][m], energy[t - lag][m])
    if not rs:
        return out
    best = max(rs, key=lambda k: rs[k])
    out.update(r=rs.get(0), best_r=rs[best], best_lag=int(best))
    return out


def real_lip_sync(frames: np.ndarray, talk_audio: np.ndarray, sample_rate: int = 16000,
                  source_open: np.ndarray | None = None, talk_mask: np.ndarray | None = None) -> dict:
    """Real-face lip-sync metrics of one video (see the module docstring) and its mouth series."""
    m = measure_real_mouth(frames)
    n = len(frames)
    energy = energy_envelope(talk_audio, n, sample_rate)
    if talk_mask is None:
        from streamavatar.audio.vad import vad_mask

        a = np.asarray(talk_audio, np.float32)
        voiced = np.zeros(n, bool)
        vm = vad_mask(a if sample_rate == 16000 else _to16k(a, sample_rate))[:n]
        voiced[:len(vm)] = vm
    else:
        voiced = np.zeros(n, bool)
        tm = np.asarray(talk_mask, bool)[:n]
        voiced[:len(tm)] = tm
    result = {"frames": n, "face_tracked_fraction": m.valid_fraction,
              "mouth_open_mean": float(m.open.mean()) if n else None,
              "mouth_open_std": float(m.open.std()) if n else None,
              "vs_energy": lagged_r(m.open, energy, m.valid),
              "vs_energy_voiced": lagged_r(m.open, energy, m.valid & voiced),
              "vs_source_video": None}
    if source_open is not None:
        k = min(n, len(source_open))
        result["vs_source_video"] = mouth_agreement(m.open[:k], np.asarray(source_open)[:k], m.valid[:k])
    return {"metrics": result, "open": m.open, "energy": energy}


def _to16k(audio: np.ndarray, rate: int) -> np.ndarray:
    from scipy.signal import resample_poly

    g = np.gcd(int(rate), 16000)
    return resample_poly(audio, 16000 // g, int(rate) // g).astype(np.float32)


def is_real_folder(corpus: str | Path) -> bool:
    """True when ``corpus`` is a folder written by ``streamavatar data prepare``."""
    from streamavatar.data.prepare import REAL_FORMAT_NAME

    try:
        return json.loads((Path(corpus) / "index.json").read_text()).get("format") == REAL_FORMAT_NAME
    except (OSError, ValueError):
        return False


def evaluate_real_folder(generated: str | Path, corpus: str | Path, progress: bool = True) -> dict:
    """``eval run`` on a prepared real folder: every ``GENERATED/<clip_id>.mp4`` (generated from the clip's first
    frame and its ``talk.wav``) against the clip's voice and its own video's mouth."""
    import soundfile as sf
    from tqdm import tqdm

    from streamavatar.eval.evaluation import find_generated, read_generated

    root = Path(corpus)
    per_clip: dict[str, dict] = {}
    for cid, path in tqdm(find_generated(generated), desc="eval real clips", unit="clip", file=sys.stderr,
                          disable=not progress):
        folder = root / "clips" / cid
        if not (folder / "talk.wav").is_file() or not (folder / "video.mp4").is_file():
            raise UserInputError(f"no prepared clip '{cid}' in {root} (expected {folder}/video.mp4 and talk.wav)")
        from streamavatar.data.video_io import read_frames

        src = read_frames(folder / "video.mp4")
        gen = read_generated(path, src.shape[1])
        audio, sr = sf.read(folder / "talk.wav", dtype="float32")
        with np.load(folder / "annotations.npz") as z:
            talk_mask = z["talk_mask"]
        src_open = measure_real_mouth(src).open
        per_clip[cid] = {
            "generated": real_lip_sync(gen, audio, sr, src_open, talk_mask)["metrics"],
            "source_video": real_lip_sync(src, audio, sr, None, talk_mask)["metrics"]}

    def mean(*keys: str) -> float | None:
        vals = []
        for c in per_clip.values():
            v = c
            for k in keys:
                v = v.get(k) if isinstance(v, dict) else None
            if v is not None:
                vals.append(float(v))
        return float(np.mean(vals)) if vals else None

    summary = {"clips": len(per_clip),
               "real_mouth_r_vs_energy": mean("generated", "vs_energy", "r"),
               "real_mouth_best_r_vs_energy": mean("generated", "vs_energy", "best_r"),
               "real_mouth_r_vs_energy_voiced": mean("generated", "vs_energy_voiced", "r"),
               "real_mouth_r_vs_source_video": mean("generated", "vs_source_video", "r"),
               "real_mouth_mae_vs_source_video": mean("generated", "vs_source_video", "mae"),
               "source_video_r_vs_energy": mean("source_video", "vs_energy", "r"),
               "face_tracked_fraction": mean("generated", "face_tracked_fraction")}
    return {"generated": str(generated), "corpus": str(corpus), "kind": "real", "summary": summary,
            "clips": per_clip}


def real_report_markdown(result: dict) -> str:
    """A small markdown table of :func:`evaluate_real_folder`'s summary."""
    rows = ["| metric | value |", "| --- | --- |"]
    for k, v in result["summary"].items():
        rows.append(f"| {k} | {'—' if v is None else (f'{v:.3f}' if isinstance(v, float) else v)} |")
    return "\n".join(rows) + "\n"
