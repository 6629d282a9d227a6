"""Write a trivial 'generator' output for ``streamavatar eval run``: frame 0 of each corpus clip of a split,
repeated for the whole clip (audio ignored). Scored as generated it gives a floor; passed as ``--baseline`` it is a
listening baseline that never moves.

    python benchmarks/eval_frozen_baseline.py CORPUS OUT [--split test]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from streamavatar.data.video_io import read_frames, write_mp4
from streamavatar.eval.corpus_clip import load_corpus_clip, split_clip_ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus")
    ap.add_argument("out")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for cid in split_clip_ids(args.corpus, args.split):
        clip = load_corpus_clip(args.corpus, cid)
        first = read_frames(clip.folder / "video.mp4", 0, 1)
        write_mp4(out / f"{cid}.mp4", np.repeat(first, clip.n_frames, 0), int(clip.fps), crf=12, pix_fmt="yuv444p")


if __name__ == "__main__":
    main()
