"""KV-cached streaming vs recomputing the whole history, for the tiny preset at 128×128-pixel latents.

For each dtype (bf16, fp32) this measures, each in its own process so peak RSS is clean:

* ``cached``: the real streaming sampler (Reference Sink + window + RAPR, ``last_step``) run for ``--chunks``
  chunks; per-chunk milliseconds around chunk 10 and around the last chunk, and peak RSS.
* ``naive``: what a cache-free implementation does for chunk k — the block-causal masked forward over the
  reference plus all k − 1 earlier chunks plus the current one, for each of the N steps — at several k.

Usage: ``python benchmarks/bench_stream_cache.py [--chunks 1000] [--threads 2] [--out results.json]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from streamavatar.config import model_preset
from streamavatar.diffusion.chunk_sampler import ChunkSampler
from streamavatar.models.dit import AvatarDiT
from streamavatar.models.random_weights import randomize_

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
LATENT = 16  # 128 px / VAE stride 8


def _model(dtype: str) -> tuple[AvatarDiT, ChunkSampler]:
    cfg = model_preset("tiny")
    model = randomize_(AvatarDiT(cfg.dit), seed=0).to(DTYPES[dtype]).eval()
    return model, ChunkSampler(model, cfg.stream)


def _audio(model: AvatarDiT, frames: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(1, frames, model.cfg.audio_tokens_per_frame, model.cfg.audio_dim, generator=g)


def run_cached(dtype: str, chunks: int) -> dict:
    model, sampler = _model(dtype)
    g = torch.Generator().manual_seed(0)
    state = sampler.start(torch.randn(1, model.cfg.latent_channels, 1, LATENT, LATENT, generator=g))
    ms = []
    for _ in range(chunks):
        t0 = time.perf_counter()
        sampler.next_chunk(state, talk_audio=_audio(model, 3, g), listen_audio=_audio(model, 3, g), generator=g)
        ms.append((time.perf_counter() - t0) * 1000)
    return {"mode": "cached", "dtype": dtype, "chunks": chunks,
            "ms_at_chunk_10": statistics.median(ms[7:12]), "ms_at_last_chunk": statistics.median(ms[-5:]),
            "ms_median": statistics.median(ms),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


@torch.no_grad()
def run_naive(dtype: str, at_chunks: list[int]) -> dict:
    model, sampler = _model(dtype)
    g = torch.Generator().manual_seed(0)
    out = {}
    for k in at_chunks:
        frames = 1 + 3 * k
        x = torch.randn(1, model.cfg.latent_channels, frames, LATENT, LATENT, generator=g)
        t = torch.zeros(1, frames)
        talk, listen = _audio(model, frames - 1, g), _audio(model, frames - 1, g)
        reps = []
        for _ in range(2):
            t0 = time.perf_counter()
            for sigma in sampler.sigmas:  # N forwards over the whole history, as a cache-free sampler must
                t[:, -3:] = sigma * 1000
                model(x, t, talk_audio=talk, listen_audio=listen, attention="block_causal", chunk_frames=3)
            reps.append((time.perf_counter() - t0) * 1000)
        out[k] = min(reps)
    return {"mode": "naive", "dtype": dtype, "ms_at_chunk": out,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=1000)
    ap.add_argument("--naive-at", default="1,10,20,40")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", default=None)
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args._child:
        mode, dtype = args._child.split(":")
        res = run_cached(dtype, args.chunks) if mode == "cached" else run_naive(
            dtype, [int(k) for k in args.naive_at.split(",")])
        print(json.dumps(res))
        return
    results = []
    for dtype in DTYPES:
        for mode in ("cached", "naive"):
            cmd = [sys.executable, __file__, "--_child", f"{mode}:{dtype}", "--chunks", str(args.chunks),
                   "--naive-at", args.naive_at, "--threads", str(args.threads)]
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            results.append(res)
            print(json.dumps(res), flush=True)
    summary = {"threads": args.threads, "results": results}
    for dtype in DTYPES:
        cached = next(r for r in results if r["mode"] == "cached" and r["dtype"] == dtype)
        naive = next(r for r in results if r["mode"] == "naive" and r["dtype"] == dtype)
        summary[f"{dtype}_naive_over_cached"] = {k: round(v / cached["ms_at_chunk_10"], 2)
                                                 for k, v in naive["ms_at_chunk"].items()}
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
