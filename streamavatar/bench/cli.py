"""``streamavatar bench …`` commands."""

from __future__ import annotations

import argparse
import json
import sys

from streamavatar.cli_args import positive_int, seed_int


def _stream(args: argparse.Namespace) -> int:
    from streamavatar.bench.stream import RANDOM_MODELS, run_engine_benchmark, run_stream_benchmark

    if args.model in RANDOM_MODELS:
        result = run_stream_benchmark(args.seconds, model_name=args.model, dtype=args.dtype,
                                      resolution=args.resolution or 128, seed=args.seed,
                                      progress=sys.stderr.isatty(), compile=args.compile)
        summary = result.summary()
    else:
        if args.resolution is not None:
            print("streamavatar bench stream: error: --resolution applies to --model random-tiny only (a trained "
                  "model runs at its own resolution)", file=sys.stderr)
            return 2
        summary = run_engine_benchmark(args.seconds, model=args.model, dtype=args.dtype, threads=args.threads,
                                       overlap=not args.no_overlap, seed=args.seed, progress=sys.stderr.isatty(),
                                       compile=args.compile)
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
    p.add_argument("--model", default="default",
                   help="'default' (the bundled model: audio encoding + DiT + VAE decode), a model folder, or "
                        "'random-tiny' (the tiny preset's DiT alone with random weights)")
    p.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp32"),
                   help="compute dtype (default auto: bf16 where this machine computes it natively, else fp32)")
    p.add_argument("--resolution", type=int, default=None,
                   help="square resolution for --model random-tiny (default 128)")
    p.add_argument("--threads", type=positive_int("--threads"), default=None,
                   help="torch threads per stage (default 1 on CPU)")
    p.add_argument("--no-overlap", action="store_true", help="decode on the DiT's thread (no pipelining)")
    p.add_argument("--seed", type=seed_int(), default=0, help="noise seed, 0 to 2**64-1")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                   choices=("inductor", "aot_eager", "eager", "cudagraphs"),
                   help="torch.compile the DiT blocks (default backend inductor) and use the ring KV cache "
                        "(compiled during warm-up, before timing)")
