"""Time of the 3-step streaming student generating one chunk vs the teacher sampling the same chunk.

Both in one process, on the same weights format and thread count:

* ``student``: :class:`~streamavatar.diffusion.chunk_sampler.ChunkSampler` (N = 3 steps, KV cache with Reference
  Sink + window + RAPR, last-step refresh) in steady state — the stream is first run past the frozen RAPR layout
  (chunk 5), then each following chunk is timed;
* ``teacher_chunk``: the bidirectional teacher sampling that chunk (reference + 3 latent frames) with its full
  Euler schedule (``--teacher-steps``, default 40) and talk/listen guidance (three predictions per step, batched);
* ``teacher_window_per_chunk``: the teacher sampling its training window (reference + 9 frames = 3 chunks), per
  chunk (a second, kinder comparison: one window amortises the reference over three chunks).

The ratio ``teacher_chunk / student`` is the speed-up of distillation (goal ≥ 20×, issue #7). Speed does not depend
on what the weights learned, so ``--student`` is optional (default: the teacher's weights in streaming mode).

Usage: ``python benchmarks/bench_student_vs_teacher.py [--teacher RUN] [--student RUN] [--threads 1]
[--repeats 5] [--bf16] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from streamavatar.config import ModelConfig
from streamavatar.diffusion.chunk_sampler import ChunkSampler
from streamavatar.diffusion.teacher_sampler import sample_teacher
from streamavatar.training.distill import load_run


def _tokens(model, projector, info: dict, frames: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    pc = info["projector"]
    shape = (1, frames, pc["window"], pc["num_layers"], pc["feature_dim"])
    with torch.no_grad():
        t, lis = projector(torch.randn(shape, generator=g), torch.randn(shape, generator=g))
    return t.to(model.dtype), lis.to(model.dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True, help="teacher run folder (teacher.json + teacher.safetensors)")
    ap.add_argument("--student", default=None, help="student run folder (default: teacher weights)")
    ap.add_argument("--teacher-steps", type=int, default=40)
    ap.add_argument("--talk-scale", type=float, default=3.0)
    ap.add_argument("--listen-scale", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--bf16", action="store_true", help="bf16 weights for both (default fp32)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    teacher, t_proj, t_info = load_run(args.teacher)
    student, s_proj, s_info = load_run(args.student or args.teacher)
    teacher, student = teacher.to(dtype), student.to(dtype)
    mc = ModelConfig.from_dict(s_info["model"])
    c = mc.stream.chunk_frames
    latent = 128 // mc.vae_spatial_stride
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(1, mc.dit.latent_channels, 1, latent, latent, generator=g).to(dtype)
    warm_chunks = 5
    talk, listen = _tokens(student, s_proj, s_info, c * (warm_chunks + args.repeats), g)

    sampler = ChunkSampler(student, mc.stream)
    state = sampler.start(ref)
    student_ms = []
    for k in range(warm_chunks + args.repeats):
        sl = slice(k * c, (k + 1) * c)
        t0 = time.perf_counter()
        sampler.next_chunk(state, talk_audio=talk[:, sl], listen_audio=listen[:, sl], generator=g)
        if k >= warm_chunks:
            student_ms.append(1000 * (time.perf_counter() - t0))

    t_talk, t_listen = _tokens(teacher, t_proj, t_info, 3 * c, g)
    pc = t_info["projector"]
    zeros = torch.zeros(1, 3 * c, pc["window"], pc["num_layers"], pc["feature_dim"])
    with torch.no_grad():
        null_t, null_l = (x.to(dtype) for x in t_proj(zeros, zeros))

    def teacher_ms(frames: int) -> float:
        kw = dict(talk_audio=t_talk[:, :frames], listen_audio=t_listen[:, :frames], steps=args.teacher_steps,
                  shift=3.0, talk_scale=args.talk_scale, listen_scale=args.listen_scale, generator=g,
                  null_talk=null_t[:, :frames], null_listen=null_l[:, :frames])
        sample_teacher(teacher, ref, frames, **kw)  # warm-up
        times = []
        for _ in range(max(1, args.repeats // 2)):
            t0 = time.perf_counter()
            sample_teacher(teacher, ref, frames, **kw)
            times.append(1000 * (time.perf_counter() - t0))
        return statistics.median(times)

    t_chunk = teacher_ms(c)
    t_window = teacher_ms(3 * c) / 3
    s_med = statistics.median(student_ms)
    res = {"student_chunk_ms": round(s_med, 2), "teacher_chunk_ms": round(t_chunk, 1),
           "teacher_window_per_chunk_ms": round(t_window, 1), "ratio_chunk": round(t_chunk / s_med, 1),
           "ratio_window_per_chunk": round(t_window / s_med, 1), "teacher_steps": args.teacher_steps,
           "guided": args.talk_scale != 1.0 or args.listen_scale != 1.0, "student_steps": mc.stream.num_steps,
           "dtype": str(dtype).replace("torch.", ""), "threads": args.threads, "latent": [latent, latent],
           "student": args.student or f"{args.teacher} (teacher weights)", "teacher": args.teacher}
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:28s} {v}")


if __name__ == "__main__":
    main()
