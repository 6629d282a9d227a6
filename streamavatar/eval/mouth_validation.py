"""Checking the exact mouth measurement against ground truth, and fitting its calibration table."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from streamavatar.eval.corpus_clip import load_corpus_clip, split_clip_ids
from streamavatar.eval.mouth_measure import measure_clip_mouth
from streamavatar.eval.stats import pearson_r


def collect_mouth(corpus: str | Path, clip_ids: list[str], progress: bool = True) -> dict[str, np.ndarray]:
    """Measured (px, linear, calibrated) and annotated (px, 0..1) mouth openings over ``clip_ids``, concatenated."""
    keys = ("open_px", "open_linear", "open", "truth_px", "truth", "clip_r")
    acc: dict[str, list] = {k: [] for k in keys}
    for cid in tqdm(clip_ids, desc="measure mouths", file=sys.stderr, disable=not progress):
        c = load_corpus_clip(corpus, cid)
        m = measure_clip_mouth(c.frames(), c.meta, c.annotations)
        acc["open_px"].append(m.open_px)
        acc["open_linear"].append(m.open_linear)
        acc["open"].append(m.open)
        acc["truth_px"].append(c.annotations["mouth_open_px"])
        acc["truth"].append(c.annotations["mouth_open"])
        acc["clip_r"].append(np.array([pearson_r(m.open, c.annotations["mouth_open"])]))
    return {k: np.concatenate(v) for k, v in acc.items()}


def validate_mouth_measure(corpus: str | Path, split: str = "test", clips: int | None = None,
                           progress: bool = True) -> dict:
    """Pearson r / MAE of the measurement against ``mouth_open_px`` and ``mouth_open`` on real corpus renders."""
    ids = split_clip_ids(corpus, split)[:clips]
    d = collect_mouth(corpus, ids, progress)
    return {"split": split, "clips": len(ids), "frames": int(len(d["open"])),
            "r_px": pearson_r(d["open_px"], d["truth_px"]),
            "mae_px": float(np.abs(d["open_px"] - d["truth_px"]).mean()),
            "r_open": pearson_r(d["open"], d["truth"]), "mae_open": float(np.abs(d["open"] - d["truth"]).mean()),
            "r_open_uncalibrated": pearson_r(d["open_linear"], d["truth"]),
            "mae_open_uncalibrated": float(np.abs(d["open_linear"] - d["truth"]).mean()),
            "clip_r_min": float(d["clip_r"].min()), "clip_r_median": float(np.median(d["clip_r"]))}


def fit_calibration(corpus: str | Path, split: str = "train", every: int = 8, bins: int = 24,
                    progress: bool = True) -> tuple[list[float], list[float]]:
    """Fit the linear -> mouth_open table: bin every ``every``-th clip's measurements on the linear estimate,
    average the ground truth per bin, force monotone (the values in ``mouth_measure.CALIBRATION_*``)."""
    d = collect_mouth(corpus, split_clip_ids(corpus, split)[::every], progress)
    x, y = d["open_linear"], d["truth"]
    edges = np.linspace(0.0, float(x.max()), bins + 1)
    xs, ys = [0.0], [0.0]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (x >= lo) & (x < hi)
        if sel.sum() > 5:
            xs.append(float(x[sel].mean()))
            ys.append(float(y[sel].mean()))
    return [round(v, 3) for v in xs], [round(v, 3) for v in np.maximum.accumulate(ys)]
