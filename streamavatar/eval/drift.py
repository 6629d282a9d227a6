"""Identity and appearance drift of a generated video relative to its reference, over time.

Two per-frame series:

* **identity distance**: ``1 - cos`` between the judge's identity embedding of the frame and of the reference
  image (frame 0 of the ground-truth clip, the image a generator is given);
* **background error**: mean absolute RGB error (0-255) over the *static* pixels of the ground-truth clip (those
  that never change by more than :data:`STATIC_TOLERANCE` from their temporal median - the backdrop, which the
  avatar never covers in that clip) against that median.

Both are averaged per minute of video and fitted with a least-squares line over time; the slope (per minute) is
the drift rate (> 0: getting worse).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamavatar.eval.stats import linear_slope

#: Largest deviation (0-255, any channel) from the temporal median for a pixel to count as static background.
STATIC_TOLERANCE = 6.0
#: Fewest static pixels needed; otherwise the frame border (4 px) is used instead.
MIN_STATIC_PIXELS = 64


@dataclass
class BackgroundReference:
    """The static background of a ground-truth clip: median colour image and the mask of static pixels."""

    median: np.ndarray   # float32 [H, W, 3]
    mask: np.ndarray     # bool [H, W]


def static_background(frames: np.ndarray) -> BackgroundReference:
    """Estimate the static background of ground-truth ``frames`` (uint8 ``[T, H, W, 3]``)."""
    f = np.asarray(frames, np.float32)
    median = np.median(f, axis=0)
    mask = (np.abs(f - median).max(axis=(0, 3)) <= STATIC_TOLERANCE)
    if mask.sum() < MIN_STATIC_PIXELS:
        mask = np.zeros(mask.shape, bool)
        mask[:4], mask[-4:], mask[:, :4], mask[:, -4:] = True, True, True, True
    return BackgroundReference(median.astype(np.float32), mask)


def background_error(frames: np.ndarray, reference: BackgroundReference) -> np.ndarray:
    """Per-frame mean absolute error (0-255) over the static pixels."""
    f = np.asarray(frames, np.float32)[:, reference.mask]       # [T, P, 3]
    return np.abs(f - reference.median[reference.mask]).mean(axis=(1, 2)).astype(np.float32)


def identity_distance(embeddings: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``1 - cos`` between unit embeddings ``[T, D]`` and a unit reference ``[D]``."""
    ref = np.asarray(reference, np.float32)
    ref = ref / max(float(np.linalg.norm(ref)), 1e-8)
    e = np.asarray(embeddings, np.float32)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-8)
    return (1.0 - e @ ref).astype(np.float32)


def summarise_series(values: np.ndarray, fps: float) -> dict:
    """Mean, per-minute means and the least-squares slope per minute of a per-frame series."""
    v = np.asarray(values, np.float64)
    minutes = np.arange(len(v)) / fps / 60.0
    per_minute = [float(v[minutes.astype(int) == m].mean()) for m in range(int(minutes[-1]) + 1)] if len(v) else []
    return {"mean": float(v.mean()) if len(v) else 0.0, "per_minute": per_minute,
            "slope_per_minute": linear_slope(minutes, v), "first_second": float(v[:int(fps)].mean()) if len(v) else 0.0,
            "last_second": float(v[-int(fps):].mean()) if len(v) else 0.0}
