"""Voice-activity detection per 25 fps video frame, causal and incremental (streaming = offline exactly).

* :class:`EnergyVAD` (default, no weights): a frame is voiced when its level (dBFS of the mean square) is above
  ``max(min_level_db, noise_floor + margin_db)``; the noise floor follows the quietest recent frames (drops at
  once, rises ``floor_rise_db_per_s``); a voiced decision holds for ``hangover_frames`` more frames so the
  gaps between syllables stay voiced.
* :class:`SileroVAD` (optional): the Silero VAD v5+ TorchScript model bundled in the PyPI package
  ``silero-vad`` (MIT), loaded from the installed package's files without importing the package (its import
  changes torch's global thread count). It scores 512-sample (32 ms) windows; a video frame's probability is
  the mean over the windows ending inside it, thresholded at 0.5 with the same hangover.

Both are fed whole video frames (640 samples at 16 kHz) in order; each decision uses only audio up to the end
of its frame.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch

from streamavatar import constants as K
from streamavatar.audio.io import ENCODER_SAMPLE_RATE
from streamavatar.errors import UserInputError

SAMPLES_PER_FRAME = ENCODER_SAMPLE_RATE // K.VIDEO_FPS


class FrameVAD:
    """Interface: ``process(frames [n, 640]) -> mask [n]`` (float32 0/1), state carried across calls."""

    def process(self, frames: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class AlwaysOnVAD(FrameVAD):
    """Marks every frame active (``vad="none"``: no masking)."""

    def process(self, frames: np.ndarray) -> np.ndarray:
        return np.ones(len(frames), dtype=np.float32)


class EnergyVAD(FrameVAD):
    """Energy VAD with an adaptive noise floor and hangover (see the module docstring)."""

    def __init__(self, min_level_db: float = -50.0, margin_db: float = 12.0, hangover_frames: int = 5,
                 floor_rise_db_per_s: float = 0.5, initial_floor_db: float = -70.0) -> None:
        self.min_level_db = min_level_db
        self.margin_db = margin_db
        self.hangover_frames = hangover_frames
        self.rise = floor_rise_db_per_s / K.VIDEO_FPS
        self.floor = initial_floor_db
        self.hang = 0

    @staticmethod
    def level_db(frames: np.ndarray) -> np.ndarray:
        """dBFS of each frame's mean square (a full-scale sine is −3 dB)."""
        return 10.0 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-12)

    def process(self, frames: np.ndarray) -> np.ndarray:
        out = np.zeros(len(frames), dtype=np.float32)
        for i, level in enumerate(self.level_db(frames)):
            self.floor = level if level < self.floor else self.floor + self.rise
            if level > max(self.min_level_db, self.floor + self.margin_db):
                self.hang = self.hangover_frames
                out[i] = 1.0
            elif self.hang > 0:
                self.hang -= 1
                out[i] = 1.0
        return out


def silero_model_file() -> Path:
    """The bundled ``silero_vad.jit`` of the installed ``silero-vad`` package (found without importing it)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError("vad='silero' needs the PyPI package 'silero-vad' (it bundles its model); install it "
                             "or use vad='energy'")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.jit"
    if not path.is_file():
        raise UserInputError(f"silero-vad is installed but {path} is missing")
    return path


class SileroVAD(FrameVAD):
    """Silero VAD on 32 ms windows, aggregated per video frame (see the module docstring)."""

    WINDOW = 512

    def __init__(self, threshold: float = 0.5, hangover_frames: int = 5) -> None:
        with warnings.catch_warnings():  # torch.jit.load is deprecated in favour of torch.export
            warnings.simplefilter("ignore", DeprecationWarning)
            self.model = torch.jit.load(str(silero_model_file()), map_location="cpu").eval()
        self.model.reset_states()
        self.threshold = threshold
        self.hangover_frames = hangover_frames
        self.hang = 0
        self._pending = np.zeros(0, dtype=np.float32)

    def process(self, frames: np.ndarray) -> np.ndarray:
        out = np.zeros(len(frames), dtype=np.float32)
        for i, frame in enumerate(frames):
            self._pending = np.concatenate([self._pending, frame.astype(np.float32)])
            probs = []
            while self._pending.size >= self.WINDOW:
                x = torch.from_numpy(self._pending[: self.WINDOW].copy())
                with torch.no_grad():
                    probs.append(float(self.model(x, ENCODER_SAMPLE_RATE)))
                self._pending = self._pending[self.WINDOW:]
            p = float(np.mean(probs))  # a frame adds 640 >= 512 samples, so at least one window ends in it
            if p >= self.threshold:
                self.hang = self.hangover_frames
                out[i] = 1.0
            elif self.hang > 0:
                self.hang -= 1
                out[i] = 1.0
        return out


def build_vad(kind: str) -> FrameVAD:
    """A fresh VAD state of the given kind (``energy``, ``silero``, ``none``)."""
    if kind == "energy":
        return EnergyVAD()
    if kind == "silero":
        return SileroVAD()
    if kind == "none":
        return AlwaysOnVAD()
    raise UserInputError(f"unknown VAD {kind!r}; expected 'energy', 'silero' or 'none'")


def vad_mask(wave16k: np.ndarray, kind: str = "energy") -> np.ndarray:
    """Per-video-frame mask of a whole 16 kHz signal (the last partial frame is padded with silence)."""
    n = -(-len(wave16k) // SAMPLES_PER_FRAME)
    padded = np.zeros(n * SAMPLES_PER_FRAME, dtype=np.float32)
    padded[: len(wave16k)] = wave16k
    return build_vad(kind).process(padded.reshape(n, SAMPLES_PER_FRAME))
