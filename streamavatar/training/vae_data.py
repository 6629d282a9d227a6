"""Video clips for VAE training and evaluation: read a corpus split into memory, sample random windows.

A corpus directory (``docs/corpus.md``) lists clip folders per split in ``train.txt`` / ``val.txt`` /
``test.txt`` (each folder holds ``video.mp4``); a plain directory of ``.mp4`` files also works (every file is
then in every split). Frames are kept as uint8 ``[T, H, W, 3]`` arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from streamavatar import constants as K
from streamavatar.data.video_io import read_video_frames, split_videos
from streamavatar.errors import UserInputError

__all__ = ["ClipBank", "read_video_frames", "split_videos"]


class ClipBank:
    """Decoded clips held in memory (up to ``max_bytes``) for random-window sampling."""

    def __init__(self, videos: list[Path], max_bytes: float = 1.5e9, seed: int = 0, progress: bool = False,
                 max_frames_per_clip: int | None = None) -> None:
        order = np.random.default_rng(seed).permutation(len(videos))
        self.clips: list[np.ndarray] = []
        self.paths: list[Path] = []
        #: per clip: the annotated mouth centre of every frame (pixels, [T, 2]) when the clip is a corpus clip
        self.mouths: list[np.ndarray | None] = []
        used = 0
        for i in tqdm(order, desc="loading clips", disable=not progress, leave=False):
            frames = read_video_frames(videos[i], max_frames_per_clip)
            if self.clips and used + frames.nbytes > max_bytes:
                break
            self.clips.append(frames)
            self.paths.append(videos[i])
            self.mouths.append(_mouth_centres(videos[i], len(frames)))
            used += frames.nbytes
        self.nbytes = used
        shapes = {c.shape[1:] for c in self.clips}
        if len(shapes) != 1:
            raise UserInputError(f"clips must share one frame size, found {sorted(shapes)}")
        self.frame_shape = shapes.pop()

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def has_mouths(self) -> bool:
        return all(m is not None for m in self.mouths)

    def sample(self, batch: int, frames: int, rng: np.random.Generator, flip: bool = True,
               crop: int | None = None, crop_step: int = 8, mouth_fraction: float = 0.0,
               with_mouths: bool = False):
        """``batch`` random windows of ``frames`` frames as float ``[B, 3, frames, H, W]`` in [-1, 1].

        With ``crop``, each window is a random ``crop x crop`` square whose corner lies on a ``crop_step`` grid
        (training on crops costs a fraction of full frames; the networks are convolutional). A ``mouth_fraction``
        of the crops is placed so that the window's mouth lies inside (corpus clips only). ``with_mouths``
        also returns the mouth centre of every frame in window coordinates, ``[B, frames, 2]`` (x, y), NaN
        where unknown.
        """
        out, mouths = [], []
        for _ in range(batch):
            k = rng.integers(len(self.clips))
            clip, mouth = self.clips[k], self.mouths[k]
            if clip.shape[0] < frames:
                raise UserInputError(f"clips need at least {frames} frames, one has {clip.shape[0]}")
            s = rng.integers(clip.shape[0] - frames + 1)
            w = clip[s:s + frames]
            m = mouth[s:s + frames].copy() if mouth is not None else np.full((frames, 2), np.nan, np.float32)
            if crop is not None and crop < min(w.shape[1:3]):
                ny, nx = (w.shape[1] - crop) // crop_step + 1, (w.shape[2] - crop) // crop_step + 1
                if mouth is not None and rng.random() < mouth_fraction:
                    x0 = _offset_over(float(m[0, 0]), nx, crop, crop_step, rng)
                    y0 = _offset_over(float(m[0, 1]), ny, crop, crop_step, rng)
                else:
                    y0 = crop_step * rng.integers(ny)
                    x0 = crop_step * rng.integers(nx)
                w = w[:, y0:y0 + crop, x0:x0 + crop]
                m -= np.array([x0, y0], np.float32)
            if flip and rng.random() < 0.5:
                w = w[:, :, ::-1]
                m[:, 0] = w.shape[2] - 1 - m[:, 0]
            out.append(np.ascontiguousarray(w))
            mouths.append(m)
        x = torch.from_numpy(np.stack(out)).permute(0, 4, 1, 2, 3).float() / K.PIXEL_HALF_RANGE - 1.0
        if with_mouths:
            return x, torch.from_numpy(np.stack(mouths)).float()
        return x


def _offset_over(centre: float, n: int, crop: int, step: int, rng: np.random.Generator) -> int:
    """A random crop corner on the ``step`` grid (``n`` positions) whose crop holds ``centre`` away from its
    edges (a quarter crop), else at least inside, else the crop centred nearest to it."""
    pos = step * np.arange(n)
    margin = crop / 4
    ok = pos[(centre >= pos + margin) & (centre < pos + crop - margin)]
    if not len(ok):
        ok = pos[(centre >= pos) & (centre < pos + crop)]
    if not len(ok):
        ok = pos[[int(np.argmin(np.abs(pos + crop / 2 - centre)))]]
    return int(rng.choice(ok))


def _mouth_centres(video: Path, n_frames: int) -> np.ndarray | None:
    """The annotated mouth centres ``[n_frames, 2]`` of a corpus clip (``annotations.npz`` beside the video)."""
    ann = video.parent / "annotations.npz"
    if video.name != "video.mp4" or not ann.is_file():
        return None
    try:
        with np.load(ann) as z:
            xy = np.asarray(z["mouth_center_xy"], np.float32)
    except (OSError, KeyError, ValueError):
        return None
    return xy[:n_frames] if len(xy) >= n_frames else None
