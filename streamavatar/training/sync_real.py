"""The SyncNet-style sync model (:mod:`streamavatar.eval.syncnet`) on prepared real clips.

The corpus model sees colour-free interior/lip maps from the renderer's colours; real faces have no known lip
colour, so a real clip's two channels are taken from the landmark-centred mouth crop itself:

* channel 0: the crop's luminance, standardised per clip (mean 0, std 1 over the clip's crops);
* channel 1: its vertical luminance gradient, standardised per clip (lip edges: where an opening mouth
  changes most).

The crop is centred on the inner-lip midpoint (``mouth_center_xy`` of the clip's annotations) and scaled by
the clip's median face box, with the same extent as the corpus crop. Training and the held-out check are the
corpus code's (:func:`streamavatar.training.sync.train_syncnet`, ``evaluate_syncnet``). The command
``streamavatar eval train-sync-real`` is :mod:`streamavatar.training.sync_real_cli`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import ndimage
from tqdm import tqdm

from streamavatar.errors import UserInputError
from streamavatar.eval.audio_features import log_mel
from streamavatar.eval.mouth_crop import CROP_H, CROP_HALF_H, CROP_HALF_W, CROP_W
from streamavatar.training.sync import SyncClipData, SyncTrainConfig, evaluate_syncnet, train_syncnet

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def real_mouth_maps(frames: np.ndarray, mouth_xy: np.ndarray, face_box: np.ndarray) -> np.ndarray:
    """``[T, 2, CROP_H, CROP_W]`` float32 luminance / vertical-gradient maps around the landmark mouth centre."""
    T = len(frames)
    fh = float(np.median(face_box[:, 3] - face_box[:, 1]))
    fw = float(np.median(face_box[:, 2] - face_box[:, 0]))
    gy = np.linspace(-CROP_HALF_H * fh, CROP_HALF_H * fh, CROP_H, dtype=np.float32)
    gx = np.linspace(-CROP_HALF_W * fw, CROP_HALF_W * fw, CROP_W, dtype=np.float32)
    lum = np.zeros((T, CROP_H, CROP_W), np.float32)
    for t in range(T):
        cx, cy = mouth_xy[t]
        yy, xx = np.meshgrid(cy + gy, cx + gx, indexing="ij")
        grey = frames[t].astype(np.float32) @ LUMA
        lum[t] = ndimage.map_coordinates(grey, [yy, xx], order=1, mode="nearest")
    grad = np.zeros_like(lum)
    grad[:, 1:] = lum[:, 1:] - lum[:, :-1]
    out = np.stack([lum, grad], 1)
    mu = out.mean(axis=(0, 2, 3), keepdims=True)
    sd = out.std(axis=(0, 2, 3), keepdims=True) + 1e-3
    return ((out - mu) / sd).astype(np.float32)


def real_clip_sync_data(folder: Path) -> SyncClipData:
    """Maps, log-mel of ``talk.wav`` and the talk mask of one prepared real clip."""
    from streamavatar.data.video_io import read_frames

    frames = read_frames(folder / "video.mp4")
    with np.load(folder / "annotations.npz") as z:
        mouth, box, talk = z["mouth_center_xy"], z["face_box"], z["talk_mask"].astype(bool)
    T = min(len(frames), len(mouth))
    audio, sr = sf.read(folder / "talk.wav", dtype="float32")
    return SyncClipData(folder.name, real_mouth_maps(frames[:T], mouth[:T], box[:T]), log_mel(audio, T, sr),
                        talk[:T])


def load_real_sync_set(data: str | Path, split: str, progress: bool = True) -> list[SyncClipData]:
    """:func:`real_clip_sync_data` for every clip of a prepared folder's split."""
    root = Path(data)
    lst = root / f"{split}.txt"
    if not lst.is_file():
        raise UserInputError(f"{root} is not a prepared folder (no {split}.txt); run `streamavatar data prepare`")
    folders = [root / line.strip() for line in lst.read_text().splitlines() if line.strip()]
    if not folders:
        raise UserInputError(f"split {split!r} of {root} has no clips")
    return [real_clip_sync_data(f) for f in tqdm(folders, desc=f"sync data {split}", file=sys.stderr,
                                                 disable=not progress)]


def train_real_syncnet(data: str | Path, out: str | Path, cfg: SyncTrainConfig, eval_split: str = "test",
                       progress: bool = True) -> dict:
    """Train on the train split of a prepared real folder, check on ``eval_split``, save to ``out``."""
    from streamavatar.eval.syncnet import save_syncnet

    model, log = train_syncnet(load_real_sync_set(data, "train", progress), cfg, progress)
    held = load_real_sync_set(data, eval_split, progress)
    report = {"kind": "real", "maps": "luminance + vertical gradient around the landmark mouth centre",
              "train": log, "train_config": cfg.__dict__, "eval_split": eval_split,
              "held_out": evaluate_syncnet(model, held)}
    save_syncnet(model, out, report)
    Path(out, "real_sync.json").write_text(json.dumps(report, indent=1, default=str))
    return report
