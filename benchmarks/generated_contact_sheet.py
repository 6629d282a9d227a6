"""Contact sheet of generated clips against their corpus clips: reference, talking and listening frames.

One row per clip of ``GEN_DIR`` (``<clip_id>.mp4``, the `streamavatar eval run` convention): the reference
frame, then ground truth and generated at the clip's widest talking mouth, then ground truth and generated at
its deepest listening nod (or, without nods, the listening frame of largest head pitch).

    PYTHONPATH=. python benchmarks/generated_contact_sheet.py GEN_DIR --corpus /work/data/corpus --out sheet.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from streamavatar.data.behaviour import LISTENING, TALKING
from streamavatar.data.video_io import read_frames
from streamavatar.eval.corpus_clip import load_corpus_clip

COLUMNS = ("reference", "talk: real", "talk: generated", "nod: real", "nod: generated")


def pick(state: np.ndarray, wanted: int, score: np.ndarray, n: int) -> int:
    ok = state[:n] == wanted
    return int(np.argmax(np.where(ok, score[:n], -np.inf))) if ok.any() else 0


def sheet(gen_dir: Path, corpus: Path, max_rows: int) -> Image.Image:
    rows = []
    for mp4 in sorted(gen_dir.glob("*.mp4"))[:max_rows]:
        clip = load_corpus_clip(corpus, mp4.stem)
        gen, real = read_frames(str(mp4)), read_frames(str(corpus / "clips" / mp4.stem / "video.mp4"))
        n = min(len(gen), len(real))
        ann = clip.annotations
        state = np.asarray(ann["state"])
        t = pick(state, TALKING, np.asarray(ann["mouth_open"]), n)
        nod = np.asarray(ann["nod"])
        lis = pick(state, LISTENING, nod if nod[:n].max() > 0 else np.asarray(ann["head_pitch"]), n)
        rows.append((mp4.stem, [real[0], real[t], gen[t], real[lis], gen[lis]]))
    h, w = rows[0][1][0].shape[:2]
    gap, top, left = 4, 16, 84
    img = Image.new("RGB", (left + len(COLUMNS) * (w + gap), top + len(rows) * (h + gap)), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for j, name in enumerate(COLUMNS):
        d.text((left + j * (w + gap) + 2, 2), name, fill=(0, 0, 0))
    for i, (name, tiles) in enumerate(rows):
        y = top + i * (h + gap)
        d.text((2, y + h // 2 - 6), name, fill=(0, 0, 0))
        for j, tile in enumerate(tiles):
            img.paste(Image.fromarray(tile), (left + j * (w + gap), y))
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gen_dir")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=8)
    args = ap.parse_args()
    sheet(Path(args.gen_dir), Path(args.corpus), args.rows).save(args.out, quality=90)
    print(args.out)


if __name__ == "__main__":
    main()
