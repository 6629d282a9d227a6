"""Does a VAE keep the mouth? Encode + decode corpus clips and measure the mouth on the reconstruction.

The exact corpus mouth measure (``eval.mouth_measure``) reads the mouth opening of the ground-truth video and of
its VAE reconstruction; both are correlated with the annotated ``mouth_open``. A DiT trained on the latents can
at best reproduce what the reconstruction shows, so this bounds the lip sync any teacher/student can reach with
that VAE. Also reports PSNR inside the mouth box (±10 px around the annotated centre) and over the frame.

    PYTHONPATH=. python benchmarks/vae_mouth_fidelity.py --corpus /work/data/corpus [--vae tiny|DIR] \
        [--split val] [--clips 4] [--frames 101] [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def mouth_box_psnr(a: np.ndarray, b: np.ndarray, centres: np.ndarray, half: int = 10) -> float:
    errs = []
    for f, g, (cx, cy) in zip(a, b, centres, strict=True):
        x0, y0 = max(0, int(cx) - half), max(0, int(cy) - half)
        errs.append(((f[y0:y0 + 2 * half, x0:x0 + 2 * half].astype(np.float64)
                      - g[y0:y0 + 2 * half, x0:x0 + 2 * half]) ** 2).mean())
    return float(10 * np.log10(255.0 ** 2 / max(np.mean(errs), 1e-10)))


def frame_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b) ** 2).mean()
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--vae", default="tiny", help="'tiny' (bundled) or a VAE directory")
    ap.add_argument("--split", default="val")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--frames", type=int, default=101, help="frames per clip, 1 + 4k")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from streamavatar.eval.corpus_clip import load_corpus_clip, split_clip_ids
    from streamavatar.eval.mouth_measure import measure_clip_mouth
    from streamavatar.eval.stats import pearson_r
    from streamavatar.models.vae import load_vae

    torch.set_num_threads(args.threads)
    vae = load_vae(args.vae, dtype=torch.bfloat16).eval()
    rows = []
    for cid in split_clip_ids(args.corpus, args.split)[:args.clips]:
        clip = load_corpus_clip(args.corpus, cid)
        video = clip.frames()[:args.frames]
        x = torch.from_numpy(video).float().div(127.5).sub(1).permute(3, 0, 1, 2)[None].to(torch.bfloat16)
        with torch.no_grad():
            y = vae.decode(vae.encode(x))
        rec = ((y.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[0].permute(1, 2, 3, 0).numpy()
        n = len(rec)
        ann = {k: (v[:n] if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == clip.n_frames else v)
               for k, v in clip.annotations.items()}
        m_rec = measure_clip_mouth(rec, clip.meta, ann).open
        m_gt = measure_clip_mouth(video[:n], clip.meta, ann).open
        rows.append({"clip": cid, "frames": n, "r_video": pearson_r(m_gt, ann["mouth_open"]),
                     "r_reconstruction": pearson_r(m_rec, ann["mouth_open"]),
                     "mean_open_video": float(m_gt.mean()), "mean_open_reconstruction": float(m_rec.mean()),
                     "psnr_db": frame_psnr(rec, video[:n]),
                     "mouth_box_psnr_db": mouth_box_psnr(rec, video[:n], ann["mouth_center_xy"])})
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}), flush=True)
    summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("clip", "frames")}
    result = {"vae": args.vae, "split": args.split, "clips": rows, "mean": summary}
    print(json.dumps({"mean": {k: round(v, 3) for k, v in summary.items()}}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
