"""bf16 vs fp32 for the tiny DiT's streaming chunk (random weights), interleaved rounds, one thread.

    PYTHONPATH=. python benchmarks/bench_dit_dtype.py [--rounds 6] [--threads 1]

Prints ms per chunk (3 denoising steps) for each round and the median per dtype. Interleaving the two dtypes
round by round keeps a changing background load from favouring one of them.
"""

from __future__ import annotations

import argparse
import time

import torch

from streamavatar.config import model_preset
from streamavatar.diffusion.chunk_sampler import ChunkSampler
from streamavatar.models.dit import AvatarDiT
from streamavatar.models.random_weights import randomize_


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = model_preset("tiny")
    runs = {}
    for name, dt in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        model = randomize_(AvatarDiT(cfg.dit)).to(dt).eval()
        sampler = ChunkSampler(model, cfg.stream)
        runs[name] = (sampler, sampler.start(torch.randn(1, 16, 1, 16, 16)), dt)
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(1, 3, 4, 256)
    times: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, (sampler, state, dt) in runs.items():
            t0 = time.perf_counter()
            for _ in range(3):
                sampler.next_chunk(state, talk_audio=audio.to(dt), listen_audio=audio.to(dt), generator=g)
            times.setdefault(name, []).append((time.perf_counter() - t0) / 3 * 1000)
    for name, v in times.items():
        print(name, [round(x) for x in v], "median", round(sorted(v)[len(v) // 2]), "ms per chunk")


if __name__ == "__main__":
    main()
