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

from streamavatar.errors import UserInputError


def read_video_frames(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """Decode an mp4 into uint8 RGB frames ``[T, H, W, 3]``."""
    import av

    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise UserInputError(f"{path} has no video frames")
    return np.stack(frames)


def split_videos(data: str | Path, split: str) -> list[Path]:
    """The ``video.mp4`` paths of one split of a corpus directory (or every ``.mp4`` of a plain directory)."""
    data = Path(data)
    if not data.is_dir():
        raise UserInputError(f"--data must be a directory of clips, got {data}")
    listing = data / f"{split}.txt"
    if listing.is_file():
        paths = []
        for line in listing.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            p = data / line
            paths.append(p if p.suffix == ".mp4" else p / "video.mp4")
    else:
        paths = sorted(data.rglob("*.mp4"))
    if not paths:
        raise UserInputError(f"no videos found for split {split!r} in {data} (expected {split}.txt or *.mp4 files)")
    return paths


class ClipBank:
    """Decoded clips held in memory (up to ``max_bytes``) for random-window sampling."""

    def __init__(self, videos: list[Path], max_bytes: float = 1.5e9, seed: int = 0, progress: bool = False,
                 max_frames_per_clip: int | None = None) -> None:
        order = np.random.default_rng(seed).permutation(len(videos))
        self.clips: list[np.ndarray] = []
        self.paths: list[Path] = []
        used = 0
        for i in tqdm(order, desc="loading clips", disable=not progress, leave=False):
            frames = read_video_frames(videos[i], max_frames_per_clip)
            if self.clips and used + frames.nbytes > max_bytes:
                break
            self.clips.append(frames)
            self.paths.append(videos[i])
            used += frames.nbytes
        self.nbytes = used
        shapes = {c.shape[1:] for c in self.clips}
        if len(shapes) != 1:
            raise UserInputError(f"clips must share one frame size, found {sorted(shapes)}")
        self.frame_shape = shapes.pop()

    def __len__(self) -> int:
        return len(self.clips)

    def sample(self, batch: int, frames: int, rng: np.random.Generator, flip: bool = True,
               crop: int | None = None, crop_step: int = 8) -> torch.Tensor:
        """``batch`` random windows of ``frames`` frames as float ``[B, 3, frames, H, W]`` in [-1, 1].

        With ``crop``, each window is a random ``crop x crop`` square whose corner lies on a ``crop_step`` grid
        (training on crops costs a fraction of full frames; the networks are convolutional).
        """
        out = []
        for _ in range(batch):
            clip = self.clips[rng.integers(len(self.clips))]
            if clip.shape[0] < frames:
                raise UserInputError(f"clips need at least {frames} frames, one has {clip.shape[0]}")
            s = rng.integers(clip.shape[0] - frames + 1)
            w = clip[s:s + frames]
            if crop is not None and crop < min(w.shape[1:3]):
                y0 = crop_step * rng.integers((w.shape[1] - crop) // crop_step + 1)
                x0 = crop_step * rng.integers((w.shape[2] - crop) // crop_step + 1)
                w = w[:, y0:y0 + crop, x0:x0 + crop]
            if flip and rng.random() < 0.5:
                w = w[:, :, ::-1]
            out.append(np.ascontiguousarray(w))
        x = torch.from_numpy(np.stack(out)).permute(0, 4, 1, 2, 3).float()
        return x / 127.5 - 1.0
