"""A small SyncNet-style audio-mouth model trained contrastively on the corpus, and its offset / confidence.

Two encoders map a window of :data:`WINDOW` video frames of mouth maps (:mod:`streamavatar.eval.mouth_crop`) and
the log-mel audio of the same frames (:mod:`streamavatar.eval.audio_features`) to unit vectors; training pulls
matching windows together and pushes apart other clips and the same clip shifted in time (InfoNCE).

Scoring follows SyncNet (Chung & Zisserman, 2016): for every candidate offset ``o`` in ``[-MAX_OFFSET,
MAX_OFFSET]`` frames the mean distance between video window ``t`` and audio window ``t + o`` is computed over the
talking frames; the offset is the argmin and the confidence is ``median(dist) - min(dist)``. Offset ``o > 0``
means the mouth moves ``o`` frames *before* the sound that drives it (audio lags the video).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from streamavatar.atomic import atomic_output, atomic_write_text
from streamavatar.errors import UserInputError
from streamavatar.eval.audio_features import MELS_PER_FRAME, N_MELS
from streamavatar.eval.mouth_crop import CROP_H, CROP_W

#: Video frames per window (0.2 s at 25 fps, as in SyncNet).
WINDOW = 5
#: Offsets searched, in frames (SyncNet's default +-15).
MAX_OFFSET = 15
EMBED = 64
DEFAULT_SYNC_DIR = Path(__file__).resolve().parents[1] / "assets" / "syncnet"


class SyncNet(nn.Module):
    """Video (mouth maps) and audio (log-mel) encoders of one window each."""

    def __init__(self) -> None:
        super().__init__()
        self.video = nn.Sequential(
            nn.Conv2d(2 * WINDOW, 32, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(32, 48, 3, 2, 1), nn.SiLU(),          # 8 x 12
            nn.Conv2d(48, 64, 3, 2, 1), nn.SiLU(),          # 4 x 6
            nn.Flatten(), nn.Linear(64 * 4 * 6, 128), nn.SiLU(), nn.Linear(128, EMBED))
        self.audio = nn.Sequential(
            nn.Conv2d(1, 32, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(32, 48, 3, 2, 1), nn.SiLU(),          # 10 x 20
            nn.Conv2d(48, 64, 3, 2, 1), nn.SiLU(),          # 5 x 10
            nn.Flatten(), nn.Linear(64 * 5 * 10, 128), nn.SiLU(), nn.Linear(128, EMBED))
        self.register_buffer("mel_mean", torch.zeros(N_MELS))
        self.register_buffer("mel_std", torch.ones(N_MELS))

    def embed_video(self, maps: torch.Tensor) -> torch.Tensor:
        """``[N, WINDOW, 2, CROP_H, CROP_W]`` -> unit ``[N, EMBED]``."""
        return F.normalize(self.video(maps.flatten(1, 2)), dim=-1)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """``[N, WINDOW * MELS_PER_FRAME, N_MELS]`` -> unit ``[N, EMBED]``."""
        return F.normalize(self.audio(((mel - self.mel_mean) / self.mel_std)[:, None]), dim=-1)


def video_windows(maps: np.ndarray) -> np.ndarray:
    """Mouth maps ``[T, 2, h, w]`` -> windows ``[T - WINDOW + 1, WINDOW, 2, h, w]`` (window i covers i..i+4)."""
    T = len(maps)
    idx = np.arange(T - WINDOW + 1)[:, None] + np.arange(WINDOW)[None, :]
    return maps[idx]


def audio_windows(mel: np.ndarray, n_frames: int) -> np.ndarray:
    """Log-mel ``[T * 4, N_MELS]`` -> windows ``[T - WINDOW + 1, WINDOW * 4, N_MELS]`` aligned with
    :func:`video_windows`."""
    idx = (np.arange(n_frames - WINDOW + 1)[:, None] * MELS_PER_FRAME
           + np.arange(WINDOW * MELS_PER_FRAME)[None, :])
    return mel[idx]


@torch.no_grad()
def embed_clip(model: SyncNet, maps: np.ndarray, mel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Video and audio embeddings ``[T - WINDOW + 1, EMBED]`` each of one clip."""
    T = min(len(maps), len(mel) // MELS_PER_FRAME)
    if T < WINDOW:
        raise UserInputError(f"sync scoring needs at least {WINDOW} frames, got {T}")
    model.eval()
    v = model.embed_video(torch.from_numpy(video_windows(maps[:T])))
    a = model.embed_audio(torch.from_numpy(audio_windows(mel, T)))
    return v.numpy(), a.numpy()


@dataclass
class SyncScore:
    """SyncNet-style result of one clip."""

    offset: int                 # frames; 0 = in sync
    confidence: float           # median distance - min distance over offsets (higher = clearer sync)
    min_distance: float         # mean distance at the best offset
    distance_at_zero: float     # mean distance at offset 0
    distances: np.ndarray       # [2 * MAX_OFFSET + 1] mean distance per offset


def sync_score(video_emb: np.ndarray, audio_emb: np.ndarray, weight: np.ndarray | None = None,
               max_offset: int = MAX_OFFSET) -> SyncScore:
    """Offset and confidence from window embeddings; ``weight`` (per window, e.g. the talking mask) selects
    which video windows count."""
    n = min(len(video_emb), len(audio_emb))
    w = np.ones(n, np.float32) if weight is None else np.asarray(weight, np.float32)[:n]
    if w.sum() <= 0:
        w = np.ones(n, np.float32)
    offsets = np.arange(-max_offset, max_offset + 1)
    dists = np.zeros(len(offsets), np.float32)
    for k, o in enumerate(offsets):
        t = np.arange(max(0, -o), min(n, n - o))
        if len(t) == 0 or w[t].sum() <= 0:
            dists[k] = np.nan
            continue
        d = np.linalg.norm(video_emb[t] - audio_emb[t + o], axis=1)
        dists[k] = float((d * w[t]).sum() / w[t].sum())
    best = int(np.nanargmin(dists))
    return SyncScore(offset=int(offsets[best]), confidence=float(np.nanmedian(dists) - dists[best]),
                     min_distance=float(dists[best]), distance_at_zero=float(dists[max_offset]), distances=dists)


def save_syncnet(model: SyncNet, folder: str | Path, report: dict | None = None) -> None:
    """Write ``syncnet.safetensors`` (bf16) and ``syncnet.json`` to ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(folder / "syncnet.safetensors") as tmp:
        save_file({k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}, str(tmp))
    atomic_write_text(folder / "syncnet.json", json.dumps({"window": WINDOW, "embed": EMBED, "crop": [CROP_H, CROP_W],
                                                           "report": report or {}}, indent=1))


def load_syncnet(folder: str | Path | None = None) -> SyncNet:
    """Load a sync model saved by :func:`save_syncnet` (default: the shipped one in ``assets/syncnet``)."""
    folder = Path(folder) if folder is not None else DEFAULT_SYNC_DIR
    if not (folder / "syncnet.safetensors").is_file():
        raise UserInputError(f"no sync model in {folder} (expected syncnet.safetensors; train one with "
                             f"'streamavatar eval train-sync')")
    model = SyncNet()
    model.load_state_dict({k: v.float() for k, v in load_file(str(folder / "syncnet.safetensors")).items()})
    model.eval()
    return model
