"""How well VAE decoders turn imperfect latents into clean frames (#22: a decoder robust to the DiT's errors).

Every held-out clip is encoded once (with the first VAE's encoder; the decoders compared must share its latent
space, e.g. a ``--decoder-only`` fine-tune), Gaussian noise of each level (in units of the normalised latents'
std, the space the DiT predicts in) is added with a fixed seed, and every decoder decodes the same noised latents
chunk by chunk as the stream does. Prints per level and decoder: PSNR / SSIM against the true frames and the
blockiness of the decoded frames on the VAE's spatial stride (the latent grid).

    PYTHONPATH=. python benchmarks/vae_latent_noise_robustness.py --data /work/data/corpus256 \\
        --vae base=/work/runs/vae64s16b/vae --vae noise=/work/runs/vae64s16_noise/vae --levels 0 0.25 0.5 --json OUT
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from streamavatar import constants as K
from streamavatar.data.video_io import read_video_frames, split_videos
from streamavatar.eval.blockiness import blockiness
from streamavatar.eval.image_metrics import psnr, ssim
from streamavatar.eval.vae_eval import usable_frames
from streamavatar.models.vae import VideoVAE


@torch.no_grad()
def decode_stream(vae: VideoVAE, z: torch.Tensor) -> torch.Tensor:
    """Decode normalised latents reference + 3-frame chunks with the streaming decoder."""
    dec = vae.streaming_decoder()
    outs = [dec.decode(z[:, :, :1].to(vae.dtype))]
    for s in range(1, z.shape[2], K.CHUNK_LATENT_FRAMES):
        outs.append(dec.decode(z[:, :, s:s + K.CHUNK_LATENT_FRAMES].to(vae.dtype)))
    return torch.cat(outs, dim=2).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--vae", action="append", required=True, help="NAME=DIR (the first one encodes)")
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    vaes = {}
    for spec in args.vae:
        name, _, path = spec.partition("=")
        vaes[name] = VideoVAE.from_pretrained(path, dtype=dtype).eval()
    encoder = next(iter(vaes.values()))
    grid = encoder.config.spatial_stride
    truth_block: list[float] = []
    rows: dict = {f"{lv:g}": {n: {"psnr_db": [], "ssim": [], "blockiness_grid": []} for n in vaes}
                  for lv in args.levels}
    for ci, path in enumerate(split_videos(args.data, args.split)[:args.max_clips]):
        frames = read_video_frames(path, args.frames)
        n = usable_frames(len(frames))
        x = torch.from_numpy(np.ascontiguousarray(frames[:n])).permute(3, 0, 1, 2)[None].float()
        x = x / K.PIXEL_HALF_RANGE - 1
        truth_block.append(blockiness(frames[:n], grid))
        with torch.no_grad():
            z = encoder.encode(x.to(dtype)).float()
        for lv in args.levels:
            g = torch.Generator().manual_seed(1000 * ci + int(lv * 100))
            zn = z + lv * torch.randn(z.shape, generator=g)
            for name, vae in vaes.items():
                y = decode_stream(vae, zn)
                r = rows[f"{lv:g}"][name]
                r["psnr_db"].append(float(psnr(y, x)[0]))
                r["ssim"].append(float(ssim(y, x)[0]))
                u8 = ((y[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) * K.PIXEL_HALF_RANGE).round().byte().numpy()
                r["blockiness_grid"].append(blockiness(u8, grid))
    summary = {lv: {n: {k: round(float(np.mean(v)), 4) for k, v in m.items()} for n, m in d.items()}
               for lv, d in rows.items()}
    print(f"true frames: blockiness_grid {np.mean(truth_block):.3f}")
    for lv, d in summary.items():
        for name, m in d.items():
            print(f"noise {lv:>5}  {name:>10}: PSNR {m['psnr_db']:.2f} dB  SSIM {m['ssim']:.4f}  "
                  f"blockiness_grid {m['blockiness_grid']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"levels": summary, "truth_blockiness_grid": round(float(np.mean(truth_block)), 4), "grid": grid,
                       "clips": args.max_clips, "split": args.split, "dtype": args.dtype,
                       "vaes": dict(s.partition("=")[::2] for s in args.vae)}, f, indent=1)


if __name__ == "__main__":
    main()
