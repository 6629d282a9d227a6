"""Streaming VAE decode time per 12-frame chunk (3 latent frames), bf16 and fp32, at 128x128 and 256x256.

    PYTHONPATH=. python benchmarks/bench_vae_decode.py [--preset tiny] [--model DIR] [--threads N] [--repeats 20]

The decoder is primed with the reference latent and one chunk, then each timed call decodes one chunk with the
causal cache carried over, exactly as the stream does. Prints one JSON line per setting (median and p90 ms).
Weights: ``--model DIR`` (a saved VAE), else the committed tiny weights when present, else seeded random ones
(speed does not depend on the values).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from streamavatar import constants as K
from streamavatar.models.random_weights import randomize_
from streamavatar.models.vae import VideoVAE, build_vae, bundled_vae_dir


def load(preset: str, model: str | None) -> tuple[VideoVAE, str]:
    if model:
        return VideoVAE.from_pretrained(model), model
    bundled = bundled_vae_dir(preset)
    if (bundled / "config.json").is_file():
        return VideoVAE.from_pretrained(bundled), f"assets/vae/{preset} (trained)"
    vae = build_vae(preset)
    randomize_(vae.net, seed=0)
    return vae.eval(), f"{preset} (random weights)"


@torch.inference_mode()
def time_decode(vae: VideoVAE, res: int, dtype: torch.dtype, repeats: int) -> dict:
    vae = vae.to(dtype)
    s, c = vae.config.spatial_stride, vae.config.latent_channels
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, c, 1 + (repeats + 2) * K.CHUNK_LATENT_FRAMES, res // s, res // s, generator=g).to(dtype)
    dec = vae.streaming_decoder()
    dec.decode(z[:, :, :1])
    times = []
    for i in range(repeats + 1):
        part = z[:, :, 1 + i * K.CHUNK_LATENT_FRAMES: 1 + (i + 1) * K.CHUNK_LATENT_FRAMES]
        t0 = time.perf_counter()
        out = dec.decode(part)
        dt = time.perf_counter() - t0
        if i:  # the first chunk warms up oneDNN kernels
            times.append(dt * 1000)
    assert out.shape[2] == K.CHUNK_VIDEO_FRAMES
    times.sort()
    return {"resolution": res, "dtype": str(dtype).removeprefix("torch."),
            "ms_median": round(statistics.median(times), 1),
            "ms_p90": round(times[int(0.9 * (len(times) - 1))], 1), "ms_min": round(times[0], 1),
            "frames_per_chunk": K.CHUNK_VIDEO_FRAMES, "repeats": repeats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny48", choices=["tiny48", "tiny", "wan2.1", "wan2.2"])
    ap.add_argument("--model", default=None, help="a saved VAE directory")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--resolutions", default="128,256")
    ap.add_argument("--dtypes", default="bf16,fp32")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    vae, source = load(args.preset, args.model)
    dtypes = {"bf16": torch.bfloat16, "fp32": torch.float32}
    for d in args.dtypes.split(","):
        for r in args.resolutions.split(","):
            row = time_decode(vae, int(r), dtypes[d], args.repeats)
            row.update(preset=vae.config.name, weights=source, threads=torch.get_num_threads())
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
