"""How many latent channels does a 4x8x8 VAE need? The PCA bound on held-out corpus identities.

A VAE with stride 4 (time) x 8 x 8 (space) maps each group of 4 frames' 8x8 patch (768 values) to ``z`` latent
values. The best *linear* map is the top-``z`` PCA of training patches; its reconstruction PSNR on held-out clips
is what the tiny VAE starts from (its non-linear paths start at zero); in our runs 45 minutes of CPU training
added about 1 dB to it. Frame 0 (encoded alone by the causal VAE) is left out: every group is 4 frames.

    PYTHONPATH=. python benchmarks/vae_pca_bound.py --corpus /work/data/corpus [--z 16 24 32 48 64] [--json out]
    PYTHONPATH=. python benchmarks/vae_pca_bound.py --corpus /work/data/corpus256 --stride 16 --z 32 48 64 96

``--stride 16`` measures a 4x16x16 VAE (Wan2.2's compression): 3072 values per patch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def clip_patches(corpus: Path, clip: str, frames: int, stride: int = 8) -> torch.Tensor:
    """The ``[N, 12·stride²]`` group patches (values in [-1, 1]) of the first ``frames`` frames of a corpus clip."""
    from streamavatar.data.video_io import read_frames
    from streamavatar.models.tiny_vae import frames_to_groups

    f = read_frames(str(corpus / clip / "video.mp4"), 0, frames)
    n = 1 + (len(f) - 1) // 4 * 4
    v = torch.from_numpy(np.asarray(f[:n])).float().permute(3, 0, 1, 2)[None] / 127.5 - 1
    g = frames_to_groups(v).flatten(0, 1)
    return F.pixel_unshuffle(g, stride).permute(0, 2, 3, 1).reshape(-1, g.shape[1] * stride * stride)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a - b) / 2).pow(2).mean()
    return float(10 * torch.log10(1 / mse))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--z", type=int, nargs="+", default=[16, 24, 32, 48, 64])
    ap.add_argument("--train-frames", type=int, default=49, help="frames read from each training clip")
    ap.add_argument("--patches", type=int, default=150_000, help="training patches for the PCA")
    ap.add_argument("--stride", type=int, default=8, choices=(8, 16), help="spatial stride of the VAE")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    corpus = Path(args.corpus)

    def split(name: str) -> list[str]:
        return [ln.strip() for ln in (corpus / f"{name}.txt").read_text().splitlines() if ln.strip()]

    train = torch.cat([clip_patches(corpus, c, args.train_frames, args.stride) for c in split("train")])
    idx = torch.from_numpy(np.random.default_rng(0).choice(len(train), min(len(train), args.patches), replace=False))
    sample = train[idx]
    mean = sample.mean(0)
    _, _, vh = torch.linalg.svd(sample - mean, full_matrices=False)
    result: dict = {"train_patches": len(sample)}
    for name in ("val", "test"):
        per_z: dict[int, list[float]] = {z: [] for z in args.z}
        for c in split(name):
            p = clip_patches(corpus, c, 10_000, args.stride)
            for z in args.z:
                basis = vh[:z]
                per_z[z].append(psnr(((p - mean) @ basis.T @ basis + mean).clamp(-1, 1), p))
        result[name] = {str(z): round(float(np.mean(v)), 2) for z, v in per_z.items()}
        print(f"{name}: PCA PSNR dB by latent channels {result[name]}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
