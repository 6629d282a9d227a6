"""Reading one clip of the synthetic corpus (video, voices, meta, annotations) for evaluation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from streamavatar.data.video_io import read_frames
from streamavatar.errors import UserInputError


@dataclass
class CorpusClip:
    """One corpus clip: its id, folder, metadata and per-frame annotations (frames and audio load on demand)."""

    clip_id: str
    folder: Path
    meta: dict
    annotations: dict[str, np.ndarray]

    @property
    def n_frames(self) -> int:
        return int(len(self.annotations["mouth_open"]))

    @property
    def fps(self) -> float:
        return float(self.meta.get("fps", 25))

    def frames(self) -> np.ndarray:
        """The ground-truth video, uint8 ``[T, H, W, 3]``."""
        return read_frames(self.folder / "video.mp4")

    def talk_audio(self) -> tuple[np.ndarray, int]:
        """The avatar's own voice (``talk.wav``) as float32 mono and its sample rate."""
        audio, sr = sf.read(self.folder / "talk.wav", dtype="float32", always_2d=False)
        return (audio.mean(1) if audio.ndim == 2 else audio), int(sr)

    def listen_audio(self) -> tuple[np.ndarray, int]:
        """The user's voice (``listen.wav``) as float32 mono and its sample rate."""
        audio, sr = sf.read(self.folder / "listen.wav", dtype="float32", always_2d=False)
        return (audio.mean(1) if audio.ndim == 2 else audio), int(sr)


def load_corpus_clip(corpus: str | Path, clip_id: str) -> CorpusClip:
    """Open clip ``clip_id`` (e.g. ``clip_00008``) of the corpus at ``corpus``."""
    root = Path(corpus)
    folder = root / "clips" / clip_id
    if not root.is_dir():
        raise UserInputError(f"--corpus must be a corpus folder (with clips/), got {root}")
    if not (folder / "meta.json").is_file() or not (folder / "annotations.npz").is_file():
        raise UserInputError(f"no corpus clip '{clip_id}' in {root} (expected {folder}/meta.json and "
                             f"annotations.npz)")
    meta = json.loads((folder / "meta.json").read_text())
    with np.load(folder / "annotations.npz") as z:
        ann = {k: z[k] for k in z.files}
    return CorpusClip(clip_id, folder, meta, ann)


def split_clip_ids(corpus: str | Path, split: str) -> list[str]:
    """Clip ids of one split (``train``/``val``/``test``) from the corpus' ``<split>.txt``."""
    path = Path(corpus) / f"{split}.txt"
    if not path.is_file():
        raise UserInputError(f"corpus split file {path} not found (expected a corpus folder with {split}.txt)")
    return [Path(line.strip()).name for line in path.read_text().splitlines() if line.strip()]
