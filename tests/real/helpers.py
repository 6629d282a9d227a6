"""Readers of a prepared folder shared by the [real] tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def clip_entries(root: Path) -> dict[str, dict]:
    """``source stem → index entry`` of a prepared folder (one clip per source in these fixtures)."""
    return {Path(c["source"]).stem: c for c in json.loads((root / "index.json").read_text())["clips"]}


def load_ann(root: Path, entry: dict) -> dict[str, np.ndarray]:
    with np.load(root / entry["path"] / "annotations.npz") as z:
        return {k: z[k] for k in z.files}
