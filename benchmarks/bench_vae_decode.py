"""Streaming VAE decode time per 12-frame chunk (3 latent frames), bf16 and fp32, at 128x128 and 256x256.

    PYTHONPATH=. python benchmarks/bench_vae_decode.py [--preset tiny] [--model DIR] [--threads N] [--repeats 20]
    PYTHONPATH=. python benchmarks/bench_vae_decode.py --compare tiny48@128,tiny64s16@256 [--rounds 5] [--dtypes bf16]

``--compare`` times several presets, each at its own resolution, round by round (interleaved, so a changing
background load favours none) and prints each one's median over the rounds and the ratio to the first.

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
from streamavatar.models.vae import VAE_PRESETS, VideoVAE, build_vae, bundled_vae_dir


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


def compare(spec: str, rounds: int, repeats: int, dtypes: list[torch.dtype]) -> None:
    pairs = [(p.split("@")[0], int(p.split("@")[1])) for p in spec.split(",")]
    vaes = {name: load(name, None) for name, _ in pairs}
    for dtype in dtypes:
        medians: dict[str, list[float]] = {f"{n}@{r}": [] for n, r in pairs}
        for _ in range(rounds):
            for name, res in pairs:
                medians[f"{name}@{res}"].append(time_decode(vaes[name][0], res, dtype, repeats)["ms_median"])
        first = statistics.median(next(iter(medians.values())))
        for key, ms in medians.items():
            m = statistics.median(ms)
            print(json.dumps({"setting": key, "dtype": str(dtype).removeprefix("torch."), "ms_median": round(m, 1),
                              "rounds_ms": ms, "ratio_to_first": round(m / first, 3),
                              "weights": vaes[key.split("@")[0]][1], "threads": torch.get_num_threads()}),
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny48", choices=sorted(VAE_PRESETS))
    ap.add_argument("--compare", default=None, metavar="PRESET@RES,...",
                    help="interleave these presets at these resolutions instead of --preset/--resolutions")
    ap.add_argument("--rounds", type=int, default=5, help="rounds for --compare")
    ap.add_argument("--model", default=None, help="a saved VAE directory")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--resolutions", default="128,256")
    ap.add_argument("--dtypes", default="bf16,fp32")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtypes = {"bf16": torch.bfloat16, "fp32": torch.float32}
    if args.compare:
        compare(args.compare, args.rounds, args.repeats, [dtypes[d] for d in args.dtypes.split(",")])
        return
    vae, source = load(args.preset, args.model)
    for d in args.dtypes.split(","):
        for r in args.resolutions.split(","):
            row = time_decode(vae, int(r), dtypes[d], args.repeats)
            row.update(preset=vae.config.name, weights=source, threads=torch.get_num_threads())
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
