"""FSDP training throughput (tokens/s) of a DiT preset with random weights on random latents.

    python benchmarks/gpu/train_throughput.py --json OUT [--config wan2.1-1.3b] [--steps 20] [--tiny]

Runs the project's :class:`~streamavatar.training.trainer.Trainer` (FSDP2 per-block sharding, bf16 parameters
with fp32 gradient reduction, activation checkpointing, global-norm clipping, sharded EMA) on a flow-matching
objective over random latents of ``--width x --height`` video (default 832x480, the 1.3B config's size:
latents 104x60, 1 reference + 21 generated latent frames, 34 320 tokens per sample). Not under ``torchrun``,
it relaunches itself under ``torchrun --standalone`` on every visible GPU (``--tiny``: 2 CPU processes with
gloo, the ``tiny`` preset at 64x64 and 3 frames, fp32 — a dry run of the same path that finishes in well
under a minute). Rank 0 writes one JSON object: world size, tokens per step, median / mean step seconds after
``--warmup`` steps, tokens/s (global and per GPU), peak memory per rank, and the model-FLOP rate (6·N·tokens +
the attention's 12·layers·tokens²·dim per sample; activation recompute not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from streamavatar.config import PRESETS, model_preset  # noqa: E402
from streamavatar.diffusion.flow import reference_input  # noqa: E402
from streamavatar.models.dit import AvatarDiT  # noqa: E402
from streamavatar.training.distributed import dist_env, shutdown  # noqa: E402
from streamavatar.training.trainer import Objective, Trainer, TrainerConfig, finite  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", required=True, help="where rank 0 writes the result")
    ap.add_argument("--config", default="wan2.1-1.3b", choices=sorted(PRESETS), help="DiT preset")
    ap.add_argument("--steps", type=int, default=20, help="timed optimiser steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="CPU dry run: tiny preset, 2 gloo processes")
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--frames", type=int, default=21, help="generated latent frames per sample")
    ap.add_argument("--batch-per-rank", type=int, default=1, help="samples per rank per micro-batch")
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--no-activation-checkpointing", dest="ac", action="store_false")
    ap.add_argument("--nproc", type=int, default=None, help="processes (default: visible GPUs; --tiny: 2)")
    args = ap.parse_args(argv)
    if args.tiny:
        args.config = "tiny" if args.config == "wan2.1-1.3b" else args.config
        args.width = args.height = 64
        args.frames, args.steps, args.warmup = 3, min(args.steps, 4), 1
    return args


def relaunch(args: argparse.Namespace, argv: list[str]) -> int:
    """Run this script under ``torchrun --standalone`` on ``--nproc`` processes."""
    n = args.nproc or (2 if args.tiny else torch.cuda.device_count())
    if n < 1:
        print("train_throughput: no GPU visible; pass --tiny for the CPU dry run", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", __file__, *argv]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    if args.tiny:
        env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(cmd, env=env).returncode


class RandomLatents(Objective):
    """Flow matching (x0 target) of the DiT on random latents: the teacher's step without data loading."""

    columns = ["loss", "grad_norm"]
    desc = "throughput"
    distributed = True

    def __init__(self, dit: AvatarDiT, batch: int, latent_shape: tuple[int, int, int, int], seed: int) -> None:
        super().__init__()
        self.modules = {"model": dit}
        params = list(dit.parameters())
        self.optimizers = {"optimizer": (torch.optim.AdamW(params, lr=1e-5), params)}
        self.ema_modules = ["model"]
        self.generator.manual_seed(seed)
        self.batch, self.latent_shape = batch, latent_shape
        self.stamps: list[float] = []

    def train_step(self, trainer: Trainer) -> dict | None:
        slices = trainer.shards(self.batch)
        b = self.batch
        x = torch.randn((b, *self.latent_shape), generator=self.generator)
        sigma = torch.rand(b, generator=self.generator)
        noise = torch.randn((b, *self.latent_shape), generator=self.generator)[:, :, 1:]
        dev = trainer.device
        model = self.modules["model"]

        def micro(i: int) -> torch.Tensor:
            xs, s = x[slices[i]].to(dev), sigma[slices[i]].to(dev)
            ref, x0 = xs[:, :, :1], xs[:, :, 1:]
            sv = s.view(-1, 1, 1, 1, 1)
            xt = (1 - sv) * x0 + sv * noise[slices[i]].to(dev)
            seq, t = reference_input(ref, xt, s)
            with trainer.autocast():
                out = model(seq, t.to(dev), reference=ref)[:, :, 1:]
            return (out.float() - x0).pow(2).mean() / trainer.cfg.grad_accum

        gn = trainer.backward_step("optimizer", micro)
        return {"loss": 0.0, "grad_norm": gn} if finite(gn) else None

    def after_step(self, trainer: Trainer) -> None:
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        self.stamps.append(time.perf_counter())


def run(args: argparse.Namespace) -> dict:
    env = dist_env("cpu" if args.tiny else "cuda")
    device = "cpu" if args.tiny else f"cuda:{env.local_rank}"
    if args.tiny:
        torch.set_num_threads(1)
    mc = model_preset(args.config)
    stride = mc.vae_spatial_stride
    c = mc.dit.latent_channels
    shape = (c, 1 + args.frames, args.height // stride, args.width // stride)
    torch.manual_seed(0)
    dit = AvatarDiT(mc.dit)
    n_params = sum(p.numel() for p in dit.parameters())
    global_batch = args.batch_per_rank * env.world * args.grad_accum
    objective = RandomLatents(dit, global_batch, shape, seed=1)
    cfg = TrainerConfig(steps=args.warmup + args.steps, max_minutes=1e9, grad_clip=1.0, ema=0.999, device=device,
                        autocast="fp32" if args.tiny else "bf16", grad_accum=args.grad_accum,
                        activation_checkpointing=args.ac)
    trainer = Trainer(cfg, objective, None, run_config={}, progress=False)
    t0 = time.perf_counter()
    trainer.fit()
    steps = [b - a for a, b in zip([t0, *objective.stamps[:-1]], objective.stamps, strict=True)][args.warmup:]
    _, ph, pw = mc.dit.patch_size
    tokens_per_sample = shape[1] * (shape[2] // ph) * (shape[3] // pw)
    tokens = global_batch * tokens_per_sample
    median = statistics.median(steps)
    d, layers = mc.dit.dim, mc.dit.num_layers
    flops = 6 * n_params * tokens + global_batch * 12 * layers * tokens_per_sample ** 2 * d
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.startswith("cuda") else None
    peaks = env.gather_objects(peak)
    return {
        "config": args.config, "tiny": args.tiny, "device": torch.cuda.get_device_name(device) if peak is not None
        else "cpu", "world_size": env.world, "fsdp": env.enabled, "params": n_params,
        "mixed_precision": "bf16 params, fp32 reduce" if peak is not None else "fp32",
        "activation_checkpointing": args.ac, "grad_accum": args.grad_accum, "global_batch": global_batch,
        "video": [args.width, args.height], "latent_shape": list(shape), "tokens_per_sample": tokens_per_sample,
        "tokens_per_step": tokens, "warmup_steps": args.warmup, "timed_steps": len(steps),
        "step_s_median": median, "step_s_mean": statistics.fmean(steps), "tokens_per_s": tokens / median,
        "tokens_per_s_per_gpu": tokens / median / env.world, "model_tflops_per_s_per_rank": flops / median / env.world
        / 1e12, "peak_mem_gib_per_rank": peaks,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if "WORLD_SIZE" not in os.environ:
        return relaunch(args, argv)
    try:
        result = run(args)
        if dist_env().is_main:
            out = Path(args.json)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=1) + "\n")
            print(json.dumps(result))
    finally:
        shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
