"""Stability of a long stream through the real engine: per-chunk time and memory, first minute vs last minute.

Runs ``streamavatar bench stream``'s engine loop (default model, audio encoding of both voices, DiT, VAE decode on
its thread, one chunk submitted ahead) for ``--minutes`` of video and reports

* per-chunk p50/p95 milliseconds (time between consecutive chunks becoming ready) in the first and the last
  minute of video, and their ratio (goal: last-minute p95 within 10 % of the first minute's);
* resident memory sampled every chunk: peak, and the slope of a least-squares line through the samples after
  the first minute (MiB per minute of video; "flat" means ~0).

The acceptance run is 30 minutes of video (about 30 / RTF minutes of wall clock):

    PYTHONPATH=. python benchmarks/bench_engine_long.py --minutes 30 --out benchmarks/results_engine_long.json

A short smoke run: ``--minutes 2``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from streamavatar import constants as K
from streamavatar.bench.stream import current_rss_mb, run_engine_benchmark

CHUNKS_PER_MINUTE = round(60 / K.CHUNK_SECONDS)  # 125


def summarise(ready_times: list[float], rss_mb: list[float], minutes: float) -> dict:
    iv = np.diff(np.asarray(ready_times)) * 1000.0  # ms between consecutive chunks
    n = CHUNKS_PER_MINUTE
    first, last = iv[: n - 1], iv[-(n - 1):]
    rss = np.asarray(rss_mb)
    video_min = np.arange(rss.size) * K.CHUNK_SECONDS / 60.0
    after = video_min >= min(1.0, video_min[-1] / 2)
    slope = float(np.polyfit(video_min[after], rss[after], 1)[0]) if after.sum() >= 2 else float("nan")
    return {
        "minutes_of_video": minutes, "chunks": len(ready_times),
        "first_minute_ms": {"p50": round(float(np.percentile(first, 50)), 2),
                            "p95": round(float(np.percentile(first, 95)), 2)},
        "last_minute_ms": {"p50": round(float(np.percentile(last, 50)), 2),
                           "p95": round(float(np.percentile(last, 95)), 2)},
        "p95_last_over_first": round(float(np.percentile(last, 95) / np.percentile(first, 95)), 4),
        "rss_mb": {"first": round(float(rss[0]), 1), "last": round(float(rss[-1]), 1),
                   "max": round(float(rss.max()), 1), "slope_mb_per_min_after_warmup": round(slope, 3)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="minutes of video to stream (default 30)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    ready: list[float] = []
    rss: list[float] = []

    def on_chunk(i, chunk, session) -> None:
        ready.append(time.perf_counter())
        rss.append(current_rss_mb())

    bench = run_engine_benchmark(args.minutes * 60.0, model=args.model, threads=args.threads,
                                 progress=sys.stderr.isatty(), on_chunk=on_chunk)
    result = {"engine": bench, "stability": summarise(ready, rss, args.minutes)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
