"""``streamavatar bench audio``: milliseconds per 0.48 s chunk for each audio backend."""

from __future__ import annotations

import argparse
import json
import sys

from streamavatar.audio.config import BACKENDS


def _bench_audio(args: argparse.Namespace) -> int:
    import torch

    from streamavatar.audio.bench import run_audio_benchmark

    if args.threads is not None:
        if args.threads <= 0:
            from streamavatar.errors import UserInputError

            raise UserInputError(f"--threads must be positive, got {args.threads}")
        torch.set_num_threads(args.threads)
    backends = args.backend or list(BACKENDS)
    results = run_audio_benchmark(backends, args.seconds, wav2vec2_dir=args.wav2vec2_dir, cache_dir=args.cache_dir,
                                  dtype=args.dtype, progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps(results))
    else:
        for name, r in results.items():
            ms = r["ms_per_chunk"]
            print(f"{name:>13}: {ms['mean']:8.2f} ms/chunk mean, p50 {ms['p50']:.2f}, p95 {ms['p95']:.2f} "
                  f"({r['chunks']} chunks of {r['chunk_ms']:.0f} ms, {r['layers']}x{r['dim']} features, "
                  f"{r['threads']} thread(s)){'  [' + r['note'] + ']' if 'note' in r else ''}")
    return 0


def register(tree) -> None:
    p = tree.subcommand("bench", "audio", "time the audio front-end per 0.48 s chunk for each backend "
                        "(streaming: resample, encode, pool, VAD, windows)", _bench_audio)
    p.add_argument("--backend", action="append", choices=list(BACKENDS),
                   help="backend to time (repeatable; default: all)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds of audio to stream (default 10)")
    p.add_argument("--wav2vec2-dir", default=None,
                   help="local Wav2Vec2Model directory; without it wav2vec2 is timed with random base-size weights")
    p.add_argument("--cache-dir", default=None, help="cache for the converted Whisper weights "
                   "(default $STREAMAVATAR_CACHE or ~/.cache/streamavatar)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="encoder compute dtype")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
