"""A contact sheet of a corpus: per identity, one talking frame and one listening frame side by side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from streamavatar.data.behaviour import LISTENING, TALKING
from streamavatar.data.video_io import read_frames
from streamavatar.errors import UserInputError


def _pick(ann: dict[str, np.ndarray], state: int, score: np.ndarray) -> int | None:
    ok = ann["state"] == state
    if not ok.any():
        return None
    return int(np.argmax(np.where(ok, score, -np.inf)))


def contact_sheet(corpus: str | Path, n_identities: int = 16, columns: int = 4) -> Image.Image:
    """Tiles of ``[talking | listening]`` frame pairs for the first ``n_identities`` identities that have both.

    The talking frame is the widest mouth of the clip; the listening frame the deepest nod (or, without nods,
    the broadest smile)."""
    corpus = Path(corpus)
    try:
        index = json.loads((corpus / "index.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserInputError(f"not a synthetic corpus (no readable index.json): {corpus}") from exc
    pairs: list[np.ndarray] = []
    seen: set[int] = set()
    for c in index["clips"]:
        if c["identity"] in seen or len(pairs) >= n_identities:
            continue
        with np.load(corpus / c["path"] / "annotations.npz") as z:
            ann = {k: z[k] for k in ("state", "mouth_open", "nod", "smile")}
        t = _pick(ann, TALKING, ann["mouth_open"])
        score = ann["nod"] if ann["nod"].max() > 0 else ann["smile"]
        listen = _pick(ann, LISTENING, score)
        if t is None or listen is None:
            continue
        frames = read_frames(corpus / c["path"] / "video.mp4")
        pairs.append(np.concatenate([frames[t], frames[listen]], axis=1))
        seen.add(c["identity"])
    if not pairs:
        raise UserInputError(f"no clip in {corpus} has both talking and listening frames")
    h, w = pairs[0].shape[:2]
    gap, label = 4, 14
    rows = -(-len(pairs) // columns)
    sheet = Image.new("RGB", (columns * (w + gap) + gap, rows * (h + gap + label) + gap), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    for i, p in enumerate(pairs):
        x = gap + (i % columns) * (w + gap)
        y = gap + (i // columns) * (h + gap + label)
        d.text((x + 2, y), "talking", fill=(0, 0, 0))
        d.text((x + w // 2 + 2, y), "listening", fill=(0, 0, 0))
        sheet.paste(Image.fromarray(p), (x, y + label))
    return sheet
