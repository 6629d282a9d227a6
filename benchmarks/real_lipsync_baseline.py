"""The real-face lip-sync baseline: today's default model on real photos with held-out speech ([real] extra).

For the astronaut (scikit-image) and grace_hopper (matplotlib) photos and held-out espeak-ng sentences (not in
the corpus vocabulary; the voice is of the corpus's kind), runs ``streamavatar generate --image PHOTO
--talk-audio WAV`` and scores the result with ``streamavatar eval real-sync``'s measure (landmark mouth
opening against the voice's energy). Two references on the same photo and audio bracket the score: the photo
whose mouth is opened by the voice's energy (what a mouth that follows the voice scores) and the still photo
(a mouth that never moves).

    python benchmarks/real_lipsync_baseline.py --out /tmp/real_baseline [--model default]

Each photo is used whole (as a user would pass it) and as the upper-body crop ``data prepare`` would make.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

SENTENCES = ("Jupiter's largest moons circle quietly beyond the asteroid belt.",
             "Our committee will publish the final budget numbers on Thursday morning.",
             "Could you describe how the old lighthouse keeper spent his winters?")


def upper_body_crop(photo: np.ndarray) -> np.ndarray:
    """The square crop ``data prepare`` takes around a face (2.6 face heights, face centre at 36 %), 512 px."""
    from streamavatar.data.face_track import FaceMeshTracker, face_geometry
    from streamavatar.data.prepare import PrepareConfig

    cfg = PrepareConfig()
    with FaceMeshTracker(static=True) as tracker:
        g = face_geometry(tracker(photo))
    h, w = photo.shape[:2]
    side = min(cfg.crop_scale * g.height, h, w)
    cx = float(np.clip(g.center[0], side / 2, w - side / 2))
    cy = float(np.clip(g.center[1] + (0.5 - cfg.crop_face_y) * side, side / 2, h - side / 2))
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    return np.asarray(Image.fromarray(photo).resize((512, 512), Image.Resampling.BICUBIC, box=box))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()
    from streamavatar.data import real_fixtures as rf
    from streamavatar.data.speech import Voice, synthesize
    from streamavatar.data.video_io import read_frames, write_mp4
    from streamavatar.eval.real_mouth import real_lip_sync

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    voice = Voice("en-us", "f4", 150, 40)  # a voice of the corpus's kind; the sentences are outside its vocabulary
    gap = np.zeros(int(0.5 * 16000), np.float32)
    speech = np.concatenate([np.concatenate([gap, synthesize(s, voice)]) for s in SENTENCES] + [gap])
    wav = out / "held_out_speech.wav"
    sf.write(wav, speech, 16000)
    n = len(speech) // 640
    results = {"audio_seconds": round(len(speech) / 16000, 2), "model": args.model}
    photos = {"astronaut": rf.astronaut(), "grace_hopper": rf.grace_hopper()}
    for name in list(photos):  # also the upper-body crop data prepare would make (face ~38 % of the height)
        photos[f"{name}_crop"] = upper_body_crop(photos[name])
    for name, photo in photos.items():
        img = out / f"{name}.png"
        Image.fromarray(photo).save(img)
        video = out / f"{name}_generated.mp4"
        r = subprocess.run([sys.executable, "-m", "streamavatar", "generate", "--image", str(img), "--talk-audio",
                            str(wav), "--model", args.model, "--out", str(video)], capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(r.stderr)
        gen = read_frames(video)
        row = {"generated": real_lip_sync(gen, speech, 16000)["metrics"]}
        size = gen.shape[1]
        small = np.asarray(Image.fromarray(photo).resize((size, size), Image.Resampling.BICUBIC))
        mask = np.zeros(n, bool)
        from streamavatar.audio.vad import vad_mask

        mask[:] = vad_mask(speech)[:n]
        drive = rf.mouth_drive(speech, mask)
        anchor = rf.face_anchor(small)
        follow = np.stack([rf.open_mouth(small, anchor, float(d) * 0.09 * anchor["face_height"]) for d in drive])
        write_mp4(out / f"{name}_follows_voice.mp4", follow, 25)
        row["reference_mouth_follows_voice"] = real_lip_sync(follow, speech, 16000)["metrics"]
        row["reference_still_photo"] = real_lip_sync(np.stack([small] * n), speech, 16000)["metrics"]
        results[name] = row
    (out / "baseline.json").write_text(json.dumps(results, indent=1))
    brief = {k: {kind: {"r": v[kind]["vs_energy"]["r"], "best_r": v[kind]["vs_energy"]["best_r"],
                        "best_lag": v[kind]["vs_energy"]["best_lag"], "tracked": v[kind]["face_tracked_fraction"]}
                 for kind in v} for k, v in results.items() if isinstance(v, dict)}
    print(json.dumps(brief, indent=1))


if __name__ == "__main__":
    main()
