"""``streamavatar data mix``: one training folder over several sources (real and synthetic), weighted per source.

A mixture folder holds no media: ``clips/<tag>__<clip>`` are symbolic links to the sources' clip folders (the
``<tag>__`` prefix keeps clip names unique, which the trainers' feature caches key on), and ``index.json`` +
``{train,val,test}.txt`` list them like a corpus, so every trainer reads a mixture like one corpus.

Weights are shares of the training windows: source ``s`` with weight ``w_s`` should give ``w_s / sum(w)`` of
the windows of an epoch. The train list repeats each clip of source ``s`` ``r_s`` times, the smallest integers
(>= 1, at most :data:`MAX_REPEAT`) whose frame shares come closest to the weights; the shares reached are
reported. Validation and test lists hold every clip once.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from streamavatar.data.dataset import MIX_FORMAT_NAME
from streamavatar.data.synthetic import FORMAT_NAME, SPLITS
from streamavatar.errors import UserInputError

MAX_REPEAT = 100


def parse_source(text: str) -> tuple[Path, float]:
    """``DIR`` or ``DIR:WEIGHT`` (weight > 0, default 1)."""
    m = re.fullmatch(r"(.+?)(?::([0-9.]+))?", text)
    path, w = Path(m[1]), float(m[2]) if m and m[2] else 1.0
    if not w > 0:
        raise UserInputError(f"--source weight must be > 0, got {text!r}")
    return path, w


def _read_index(root: Path) -> dict:
    from streamavatar.data.dataset import REAL_FORMAT_NAME

    try:
        index = json.loads((root / "index.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserInputError(f"--source {root} is not a corpus or prepared folder (index.json: {exc})") from exc
    if index.get("format") not in (FORMAT_NAME, REAL_FORMAT_NAME):
        raise UserInputError(f"--source {root}: format {index.get('format')!r} cannot be mixed "
                             f"(expected {FORMAT_NAME!r} or {REAL_FORMAT_NAME!r})")
    return index


def repeats_for(weights: list[float], frames: list[int]) -> list[int]:
    """Integer repeats per source whose frame shares best match the weights (see the module docstring)."""
    if any(f <= 0 for f in frames):
        raise UserInputError("every source needs at least one training clip")
    raw = [w / f for w, f in zip(weights, frames, strict=True)]
    base = min(raw)
    best, best_err = None, None
    for scale in range(1, 21):  # try finer integer grids and keep the closest
        reps = [min(MAX_REPEAT, max(1, round(scale * r / base))) for r in raw]
        tot = sum(r * f for r, f in zip(reps, frames, strict=True))
        err = sum(abs(r * f / tot - w / sum(weights)) for r, f, w in zip(reps, frames, weights, strict=True))
        if best_err is None or err < best_err - 1e-9:
            best, best_err = reps, err
    return best


def build_mixture(sources: list[tuple[Path, float]], out: str | Path) -> dict:
    """Write the mixture folder ``out``; returns its summary (tags, weights, repeats, shares reached)."""
    if len(sources) < 1:
        raise UserInputError("give at least one --source")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserInputError(f"{out} is not empty; choose a new --out")
    indexes = [_read_index(p) for p, _ in sources]
    if len({ix["resolution"] for ix in indexes}) > 1:
        raise UserInputError("sources have different resolutions: "
                             + ", ".join(f"{p}: {ix['resolution']}" for (p, _), ix in zip(sources, indexes,
                                                                                    strict=True)))
    tags, seen = [], set()
    for p, _ in sources:
        tag = re.sub(r"[^a-z0-9]+", "-", p.resolve().name.lower()).strip("-") or "source"
        while tag in seen:
            tag += "x"
        seen.add(tag)
        tags.append(tag)
    train_frames = [sum(c["n_frames"] for c in ix["clips"] if c["split"] == "train") for ix in indexes]
    reps = repeats_for([w for _, w in sources], train_frames)
    (out / "clips").mkdir(parents=True)
    clips, lists = [], {s: [] for s in SPLITS}
    for (root, _), index, tag, r in zip(sources, indexes, tags, reps, strict=True):
        kind = "real" if index["format"] != FORMAT_NAME else "synthetic"
        for c in index["clips"]:
            name = f"{tag}__{Path(c['path']).name}"
            os.symlink(os.path.relpath((root / c["path"]).resolve(), (out / "clips").resolve()), out / "clips" / name)
            entry = {**c, "id": name, "path": f"clips/{name}", "identity": f"{tag}/{c['identity']}",
                     "source": tag, "source_kind": kind}
            clips.append(entry)
            lists[c["split"]].extend([entry["path"]] * (r if c["split"] == "train" else 1))
    tot = sum(r * f for r, f in zip(reps, train_frames, strict=True))
    summary = {"sources": [{"tag": t, "path": str(p), "weight": w, "train_frames": f, "repeat": r,
                            "share": round(r * f / tot, 4)}
                           for t, (p, w), f, r in zip(tags, sources, train_frames, reps, strict=True)]}
    index = {"format": MIX_FORMAT_NAME, "kind": "mixture", "fps": indexes[0]["fps"],
             "resolution": indexes[0]["resolution"], "seed": "mixture", "clips": clips, **summary,
             "splits": {s: sorted({c["identity"] for c in clips if c["split"] == s}) for s in SPLITS}}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    for s in SPLITS:
        (out / f"{s}.txt").write_text("".join(f"{p}\n" for p in lists[s]))
    return summary
