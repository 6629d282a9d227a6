"""Ground-truth and fidelity figures of a built corpus (issue #3 acceptance numbers).

* mp4 fidelity: PSNR of the decoded ``video.mp4`` against the raw render (re-rendered from the index's seed).
* lip drive: Pearson correlation of ``mouth_open`` with the agent voice's short-time energy (RMS per frame,
  read from ``talk.wav``), per clip with at least one second of agent speech, and pooled over all frames.
* mouth closed when silent, nods only while listening, mouth range and face height in pixels.

    python benchmarks/corpus_quality.py --data /work/data/corpus --psnr-clips 8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from streamavatar.data.behaviour import LISTENING, short_time_energy
from streamavatar.data.synthetic import SynthConfig, synthesize_clip
from streamavatar.data.video_io import read_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--psnr-clips", type=int, default=8, help="clips to re-render for the PSNR check")
    args = ap.parse_args()
    root = Path(args.data)
    index = json.loads((root / "index.json").read_text())
    fps, T = index["fps"], index["n_frames"]
    corr, pooled_e, pooled_m = [], [], []
    silent_max, nods_outside, open_range, face_h = 0.0, 0, [], []
    for c in index["clips"]:
        d = root / c["path"]
        talk, sr = sf.read(d / "talk.wav", dtype="float32")
        e = short_time_energy(talk, sr, fps, T)
        with np.load(d / "annotations.npz") as z:
            m, state, nod = z["mouth_open"], z["state"], z["nod"]
            px_range = float(z["mouth_open_px"].max() - z["mouth_open_px"].min())
            face_h.append(float((z["face_box"][:, 3] - z["face_box"][:, 1]).min()))
        pooled_e.append(e)
        pooled_m.append(m)
        if (e > 0.01).sum() >= fps:  # clips with at least a second of agent speech
            corr.append(float(np.corrcoef(e, m)[0, 1]))
            open_range.append(px_range)
        silent = np.convolve(e > 1e-4, np.ones(5), mode="same") == 0
        if silent.any():
            silent_max = max(silent_max, float(m[silent].max()))
        nods_outside += int(((nod > 0) & (state != LISTENING)).sum())
    cfg = SynthConfig.from_index(index)
    psnr = []
    for c in index["clips"][: args.psnr_clips]:
        raw = synthesize_clip(cfg, int(c["id"].split("_")[1])).frames
        back = read_frames(root / c["path"] / "video.mp4")
        mse = float(np.mean((back.astype(np.float64) - raw) ** 2))
        psnr.append(10 * np.log10(255 ** 2 / mse))
    e_all, m_all = np.concatenate(pooled_e), np.concatenate(pooled_m)
    print(json.dumps({
        "clips": len(index["clips"]),
        "energy_corr_per_clip": {"n": len(corr), "mean": round(float(np.mean(corr)), 4),
                                 "min": round(float(np.min(corr)), 4)},
        "energy_corr_pooled": round(float(np.corrcoef(e_all, m_all)[0, 1]), 4),
        "mouth_open_when_silent_max": round(silent_max, 4),
        "nod_frames_outside_listening": nods_outside,
        "mouth_open_px_range_speaking_clips": {"min": round(min(open_range), 2),
                                               "mean": round(float(np.mean(open_range)), 2)},
        "face_height_px_min": round(min(face_h), 2),
        "mp4_psnr_db": {"n": len(psnr), "mean": round(float(np.mean(psnr)), 2), "min": round(float(np.min(psnr)), 2)},
    }, indent=1))


if __name__ == "__main__":
    main()
