"""Is bf16 fast on this CPU? fp32 against bf16 for the three kinds of work the engine does, interleaved.

    PYTHONPATH=. python benchmarks/bench_cpu_bf16.py [--rounds 3] [--threads 1] [--out F]

Times (median over rounds, each round fp32 then bf16): a 512x512 matrix product (x20), the bundled tiny48 VAE
decoding one 12-frame chunk at 128x128, and one streaming chunk (3 denoising steps) of the tiny48 DiT with random
weights. Prints one JSON object with the CPU's flags, what ``--dtype auto`` picks here
(:mod:`streamavatar.hardware`) and the bf16/fp32 time ratio of each: well below 1 on CPUs with bf16 instructions
(AVX512-BF16, AMX), tens on CPUs that emulate bf16.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from streamavatar.config import StreamConfig, model_preset
from streamavatar.diffusion.chunk_sampler import ChunkSampler
from streamavatar.hardware import cpu_flags, cpu_has_native_bf16, resolve_dtype_name
from streamavatar.models.dit import AvatarDiT
from streamavatar.models.random_weights import randomize_
from streamavatar.models.vae import load_vae


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def workloads(dtype: torch.dtype) -> dict:
    """name -> a no-argument callable doing the work once in ``dtype`` (built once, warmed up)."""
    a = torch.randn(512, 512).to(dtype)
    vae = load_vae("tiny48", dtype=dtype).eval()
    z = torch.randn(1, vae.config.latent_channels, 3, 16, 16).to(dtype)
    cfg = model_preset("tiny48")
    dit = randomize_(AvatarDiT(cfg.dit), seed=0).to(dtype).eval()
    stream = StreamConfig()
    audio = torch.randn(1, stream.chunk_frames, cfg.dit.audio_tokens_per_frame, cfg.dit.audio_dim).to(dtype)
    reference = torch.randn(1, cfg.dit.latent_channels, 1, 16, 16)

    @torch.no_grad()
    def dit_chunk():
        sampler = ChunkSampler(dit, stream)
        state = sampler.start(reference.to(dtype).float())
        sampler.next_chunk(state, talk_audio=audio, listen_audio=audio, generator=torch.Generator().manual_seed(0))

    jobs = {"matmul_512_x20": lambda: [a @ a for _ in range(20)],
            "vae_decode_chunk": torch.no_grad()(lambda: vae.decode(z)),
            "dit_chunk": dit_chunk}
    for fn in jobs.values():
        fn()
    return jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    jobs = {"fp32": workloads(torch.float32), "bf16": workloads(torch.bfloat16)}
    times: dict[str, dict[str, list[float]]] = {d: {k: [] for k in jobs[d]} for d in jobs}
    for _ in range(args.rounds):
        for name in jobs["fp32"]:
            for d in ("fp32", "bf16"):
                times[d][name].append(_seconds(jobs[d][name]))
    med = {d: {k: round(statistics.median(v) * 1000, 2) for k, v in t.items()} for d, t in times.items()}
    out = {"cpu_flags": sorted(f for f in cpu_flags() if "avx" in f or "amx" in f or f in ("fma", "bf16")),
           "native_bf16": cpu_has_native_bf16(), "auto_picks": resolve_dtype_name("auto"),
           "threads": args.threads, "rounds": args.rounds, "ms_median": med,
           "bf16_over_fp32": {k: round(med["bf16"][k] / med["fp32"][k], 2) for k in med["fp32"]}}
    text = json.dumps(out)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
