"""Lip-sync agreement between a generated video and the ground truth of the same audio."""

from __future__ import annotations

import numpy as np

from streamavatar.eval.stats import pearson_r


def mouth_agreement(generated: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Pearson r and mean absolute error between two per-frame mouth-opening series (0..1), over the frames both
    cover and, when given, where ``mask`` is true (needs at least two frames there). ``r`` is ``None`` when the
    reference does not move (a clip without speech: correlation is undefined there, only the MAE counts)."""
    n = min(len(generated), len(reference))
    g = np.asarray(generated, np.float64)[:n]
    r = np.asarray(reference, np.float64)[:n]
    if mask is not None:
        m = np.asarray(mask, bool)[:n]
        if m.sum() >= 2:
            g, r = g[m], r[m]
    moving = len(r) >= 2 and float(np.ptp(r)) > 1e-6
    return {"r": pearson_r(g, r) if moving else None, "mae": float(np.abs(g - r).mean()), "frames": int(len(g))}
