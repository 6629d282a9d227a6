"""bf16 against fp32 for the whole engine (audio encoding + DiT + VAE), interleaved, in one run.

    PYTHONPATH=. python benchmarks/bench_stream_dtype.py [--seconds 60] [--rounds 1] [--model default] [--out F]

Each round streams ``--seconds`` with ``bench stream``'s code (``run_engine_benchmark``) in bf16, then in fp32;
prints one JSON object with both summaries (RTF, first-frame delay, per-chunk p50/p95, the bf16 self-check's
verdict) and the fp32/bf16 ratios, so the two numbers come from the same machine load.
"""

from __future__ import annotations

import argparse
import json
import statistics

from streamavatar.bench.stream import run_engine_benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"bf16": [], "fp32": []}
    for _ in range(args.rounds):
        for dtype in ("bf16", "fp32"):
            runs[dtype].append(run_engine_benchmark(args.seconds, model=args.model, dtype=dtype, progress=False))

    def med(dtype: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[dtype])

    out = {"seconds": args.seconds, "rounds": args.rounds, "model": args.model,
           "bf16": {"rtf": med("bf16", "rtf"), "ffd_s": med("bf16", "ffd_s"),
                    "chunk_ms": runs["bf16"][-1]["chunk_ms"], "dtype": runs["bf16"][-1].get("dtype")},
           "fp32": {"rtf": med("fp32", "rtf"), "ffd_s": med("fp32", "ffd_s"),
                    "chunk_ms": runs["fp32"][-1]["chunk_ms"], "dtype": runs["fp32"][-1].get("dtype")},
           "runs": runs}
    out["fp32_over_bf16_rtf"] = round(out["fp32"]["rtf"] / out["bf16"]["rtf"], 3)
    text = json.dumps(out)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
