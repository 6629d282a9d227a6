"""FID / FVD proxies: Fréchet distances between judge features of generated and ground-truth videos.

* **FID proxy**: per-frame judge features (256-d), pooled over all frames of all clips.
* **FVD proxy**: per window of :data:`CLIP_WINDOW` frames (stride :data:`CLIP_STRIDE`), the concatenation of the
  window's mean feature and its mean absolute frame-to-frame feature change, so both appearance and motion count.

The judge is trained on the corpus, so these distances are comparable only between runs on corpus-style video,
not with the paper's Inception/I3D numbers.
"""

from __future__ import annotations

import numpy as np

from streamavatar.eval.stats import frechet_distance_features

CLIP_WINDOW = 16
CLIP_STRIDE = 8


def window_descriptors(features: np.ndarray) -> np.ndarray:
    """``[T, D]`` per-frame features -> ``[W, 2D]`` window descriptors (empty when ``T < CLIP_WINDOW``)."""
    f = np.asarray(features, np.float32)
    rows = []
    for s in range(0, len(f) - CLIP_WINDOW + 1, CLIP_STRIDE):
        w = f[s:s + CLIP_WINDOW]
        rows.append(np.concatenate([w.mean(0), np.abs(np.diff(w, axis=0)).mean(0)]))
    return np.stack(rows) if rows else np.zeros((0, 2 * f.shape[1]), np.float32)


def fid_proxy(generated: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Fréchet distance of per-frame features; lists hold one ``[T, D]`` array per clip."""
    return frechet_distance_features(np.concatenate(generated), np.concatenate(reference))


def fvd_proxy(generated: list[np.ndarray], reference: list[np.ndarray]) -> float | None:
    """Fréchet distance of window descriptors; ``None`` when either side has fewer than two windows."""
    g = np.concatenate([window_descriptors(f) for f in generated])
    r = np.concatenate([window_descriptors(f) for f in reference])
    if len(g) < 2 or len(r) < 2:
        return None
    return frechet_distance_features(g, r)
