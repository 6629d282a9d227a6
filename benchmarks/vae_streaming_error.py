"""Streaming-vs-full decode error of a VAE on real latents (fp32 and bf16), printed as one JSON line.

    PYTHONPATH=. python benchmarks/vae_streaming_error.py [--model DIR] [--video clip.mp4] [--frames 49]

Latents come from encoding a clip (or seeded noise without ``--video``); the streaming decoder gets the
reference latent, then chunks of 1 and of 3 latent frames. Errors are max |diff| in pixels of [-1, 1].
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from streamavatar import constants as K
from streamavatar.eval.vae_eval import usable_frames
from streamavatar.models.vae import load_vae
from streamavatar.training.vae_data import read_video_frames


def stream(vae, z: torch.Tensor, chunk: int) -> torch.Tensor:
    dec = vae.streaming_decoder()
    outs = [dec.decode(z[:, :, :1])] + [dec.decode(z[:, :, s:s + chunk]) for s in range(1, z.shape[2], chunk)]
    return torch.cat(outs, dim=2).float()


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--video", default=None)
    ap.add_argument("--frames", type=int, default=49)
    args = ap.parse_args()
    vae = load_vae(args.model, dtype=torch.float32)
    if args.video:
        frames = read_video_frames(args.video, args.frames)
        frames = frames[:usable_frames(len(frames))]
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        z = vae.encode(x)
    else:
        z = torch.randn(1, vae.config.latent_channels, 1 + 4 * K.CHUNK_LATENT_FRAMES, 16, 16,
                        generator=torch.Generator().manual_seed(0))
    out = {"latent_frames": z.shape[2]}
    full32 = vae.decode(z).float()
    for chunk in (1, K.CHUNK_LATENT_FRAMES):
        out[f"fp32_stream{chunk}_vs_full"] = float((stream(vae, z, chunk) - full32).abs().max())
    vae16 = vae.to(torch.bfloat16)
    z16 = z.to(torch.bfloat16)
    full16 = vae16.decode(z16).float()
    for chunk in (1, K.CHUNK_LATENT_FRAMES):
        s16 = stream(vae16, z16, chunk)
        out[f"bf16_stream{chunk}_vs_bf16_full"] = float((s16 - full16).abs().max())
        out[f"bf16_stream{chunk}_vs_fp32_full_max"] = float((s16 - full32).abs().max())
        out[f"bf16_stream{chunk}_vs_fp32_full_mean"] = float((s16 - full32).abs().mean())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
