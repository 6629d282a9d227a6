"""``streamavatar bench …`` commands."""

from __future__ import annotations

import argparse
import json
import sys


def _stream(args: argparse.Namespace) -> int:
    from streamavatar.bench.stream import run_stream_benchmark  # torch loads only when a command runs

    result = run_stream_benchmark(args.seconds, model_name=args.model, dtype=args.dtype,
                                  resolution=args.resolution, seed=args.seed, progress=sys.stderr.isatty())
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:>15}: {value}")
    return 0


def register(tree) -> None:
    p = tree.subcommand("bench", "stream", "time an endless stream chunk by chunk (RTF, first-frame delay, "
                        "per-chunk ms, peak memory)", _stream)
    p.add_argument("--seconds", type=float, default=10.0, help="seconds of video to stream (default 10)")
    p.add_argument("--model", default="random-tiny", choices=("random-tiny",),
                   help="model to time; 'random-tiny' = the tiny preset with random weights (DiT only)")
    p.add_argument("--dtype", default="bf16", choices=("bf16", "fp32"), help="compute dtype (bf16 is fast on CPU)")
    p.add_argument("--resolution", type=int, default=128, help="square video resolution in pixels (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
