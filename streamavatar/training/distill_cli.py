"""``streamavatar train distill``: Stage 1 distillation of the teacher into the streaming student."""

from __future__ import annotations

import argparse
import sys

from streamavatar.cli_args import positive_float, positive_int
from streamavatar.config import DEFAULT_PRESET


def _train(args: argparse.Namespace) -> int:
    import torch

    from streamavatar.errors import UserInputError
    from streamavatar.training.distill import DistillConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.phase == "sid" and not args.init_from and not args.resume:
        raise UserInputError("--phase sid starts from an ODE-initialised student: pass --init-from ODE_RUN")
    cfg = DistillConfig(
        teacher=args.teacher, data=args.data, out=args.out, phase=args.phase, init_from=args.init_from,
        preset=args.preset, reference_sink=args.sink, rapr=args.rapr and args.sink, batch=args.batch,
        lr=args.lr, ema=args.ema, steps=args.steps, max_minutes=args.minutes,
        checkpoint_every=args.checkpoint_every, seed=args.seed, teacher_steps=args.teacher_steps,
        teacher_shift=args.teacher_shift, talk_scale=args.talk_scale, listen_scale=args.listen_scale,
        pairs=args.pairs, pair_batch=args.pair_batch, trajectories=args.trajectories,
        rollout_chunks=args.rollout_chunks, fake_updates=args.fake_updates, fake_lr=args.fake_lr,
        sid_alpha=args.sid_alpha, feature_cache=args.feature_cache, split=args.split)
    if args.phase == "ode":
        from streamavatar.training.ode_init import train_ode as train
    else:
        from streamavatar.training.sid_train import train_sid as train
    last = train(cfg, resume=args.resume, progress=args.progress or sys.stderr.isatty())
    print(" ".join(f"{k}={v}" for k, v in last.items()))
    return 0


def register(tree) -> None:
    p = tree.subcommand("train", "distill",
                        "distil the teacher into the 3-step streaming student (ODE init, then SiD)", _train)
    p.add_argument("--teacher", required=True, help="teacher run folder (teacher.json + teacher.safetensors)")
    p.add_argument("--data", required=True, help="data folder: data synth, data prepare or data mix output")
    p.add_argument("--out", required=True, help="run folder (checkpoints, log, student.safetensors/.json)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--phase", default="ode", choices=("ode", "sid"),
                   help="ode: regress teacher ODE trajectories; sid: Score identity Distillation over rollouts")
    p.add_argument("--init-from", default=None,
                   help="run folder the student starts from (sid: the ODE run; default for ode: the teacher)")
    p.add_argument("--preset", default=DEFAULT_PRESET,
                   help=f"model preset the teacher must be (default {DEFAULT_PRESET})")
    sink = p.add_mutually_exclusive_group()
    sink.add_argument("--no-sink", dest="sink", action="store_false",
                      help="ablation: no Reference Sink (plain FIFO cache; implies no RAPR)")
    sink.add_argument("--sink-only", dest="rapr", action="store_false",
                      help="ablation: Reference Sink without RAPR (absolute RoPE indices)")
    p.set_defaults(sink=True, rapr=True)
    p.add_argument("--batch", type=positive_int("--batch"), default=4)
    p.add_argument("--lr", type=positive_float("--lr"), default=5e-5, help="student learning rate")
    p.add_argument("--ema", type=float, default=0.99, help="EMA decay of the exported student")
    p.add_argument("--steps", type=positive_int("--steps"), default=100_000, help="stop after this many steps in all")
    p.add_argument("--minutes", type=positive_float("--minutes"), default=60.0,
                   help="stop after this many minutes (this invocation, trajectory generation included)")
    p.add_argument("--checkpoint-every", type=positive_int("--checkpoint-every"), default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher-steps", type=positive_int("--teacher-steps"), default=40,
                   help="Euler steps of the teacher's ODE (trajectories)")
    p.add_argument("--teacher-shift", type=positive_float("--teacher-shift"), default=3.0,
                   help="sigma shift of the teacher's Euler grid")
    p.add_argument("--talk-scale", type=float, default=3.0, help="teacher talk-audio guidance")
    p.add_argument("--listen-scale", type=float, default=1.0, help="teacher listen-audio guidance")
    p.add_argument("--pairs", type=positive_int("--pairs"), default=64, help="ode: teacher trajectories to sample")
    p.add_argument("--pair-batch", type=positive_int("--pair-batch"), default=4,
                   help="ode: trajectories sampled per teacher batch (one cache shard)")
    p.add_argument("--trajectories", default=None, help="ode: trajectory cache folder (default RUN/trajectories)")
    p.add_argument("--rollout-chunks", type=positive_int("--rollout-chunks"), default=4,
                   help="sid: chunks per self-forcing rollout (>= the RAPR layout's chunks)")
    p.add_argument("--fake-updates", type=positive_int("--fake-updates"), default=5,
                   help="sid: fake-score updates per generator update")
    p.add_argument("--fake-lr", type=positive_float("--fake-lr"), default=5e-5, help="sid: fake-score learning rate")
    p.add_argument("--sid-alpha", type=float, default=1.0, help="sid: alpha of the SiD generator loss")
    p.add_argument("--feature-cache", default=None,
                   help="encoded-clip cache (default: the teacher's, else RUN/features)")
    p.add_argument("--split", default="train", choices=("train", "val", "test"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--progress", action="store_true",
                   help="show progress bars even when stderr is not a terminal (e.g. redirected to a log file)")
