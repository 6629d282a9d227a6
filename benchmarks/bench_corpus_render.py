"""How long the synthetic corpus takes to build, extrapolated to one hour of footage.

Builds ``--clips`` clips of ``--seconds`` seconds with ``--workers`` processes (everything: speech, behaviour,
rendering, H.264/AAC encoding, wavs, annotations) and reports wall-clock time per hour of footage. Then times
the stages of one clip in this process. Run from the repository root:

    python benchmarks/bench_corpus_render.py --clips 40 --seconds 8 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from streamavatar.data.avatar import sample_identity
from streamavatar.data.behaviour import compute_behaviour
from streamavatar.data.conversation import build_conversation
from streamavatar.data.render import AvatarRenderer
from streamavatar.data.synthetic import SynthConfig, build_corpus, synthesize_clip, write_clip


def stage_times(cfg: SynthConfig) -> dict:
    """Seconds per stage for clip 0 of ``cfg``, in this process."""
    ident = sample_identity(cfg.seed, 0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    conv = build_conversation(cfg.seconds, ident.voice, ident.voice, rng)
    t1 = time.perf_counter()
    beh = compute_behaviour(conv, cfg.fps, cfg.n_frames, rng)
    t2 = time.perf_counter()
    r = AvatarRenderer(ident, cfg.resolution)
    t3 = time.perf_counter()
    for t in range(cfg.n_frames):
        r.render(beh.pose(t))
    t4 = time.perf_counter()
    clip = synthesize_clip(cfg, 0)
    with tempfile.TemporaryDirectory() as tmp:
        t5 = time.perf_counter()
        write_clip(clip, Path(tmp) / "clip", cfg)
        t6 = time.perf_counter()
    return {"speech_s": t1 - t0, "behaviour_s": t2 - t1, "renderer_setup_s": t3 - t2, "render_s": t4 - t3,
            "render_ms_per_frame": 1000 * (t4 - t3) / cfg.n_frames, "write_s": t6 - t5}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--seed", type=int, default=123)
    args = ap.parse_args()
    cfg = SynthConfig(clips=args.clips, seconds=args.seconds, seed=args.seed, resolution=args.resolution,
                      workers=args.workers)
    load_before = os.getloadavg()[0]

    def cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    with tempfile.TemporaryDirectory() as tmp:
        c0, t = cpu(), time.perf_counter()
        build_corpus(tmp, cfg, progress=False)
        wall, cpu_s = time.perf_counter() - t, cpu() - c0
    footage = args.clips * cfg.n_frames / cfg.fps
    result = {
        "clips": args.clips, "seconds_per_clip": args.seconds, "workers": args.workers,
        "resolution": args.resolution, "footage_s": footage, "wall_s": round(wall, 2),
        "realtime_factor": round(footage / wall, 2),
        "minutes_per_hour_of_footage": round(wall / footage * 3600 / 60, 2),
        "extrapolated": footage < 3600,
        "cpu_s": round(cpu_s, 2),
        # what the same work costs on two otherwise idle cores: CPU seconds spread over the workers
        "idle_machine_minutes_per_hour_estimate": round(cpu_s / min(args.workers, os.cpu_count() or 1)
                                                        / footage * 3600 / 60, 2),
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "stages_one_clip_one_process": {k: round(v, 4) for k, v in stage_times(cfg).items()},
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
