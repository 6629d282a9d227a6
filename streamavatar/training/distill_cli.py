"""``streamavatar train distill``: Stage 1 distillation of the teacher into the streaming student."""

from __future__ import annotations

import argparse
import sys

from streamavatar.config_flags import add_config_flags, config_from_args


def _train(args: argparse.Namespace) -> int:
    import torch

    from streamavatar.errors import UserInputError
    from streamavatar.training.distill import DistillConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.phase == "sid" and not args.init_from and not args.resume:
        raise UserInputError("--phase sid starts from an ODE-initialised student: pass --init-from ODE_RUN")
    cfg = config_from_args(DistillConfig, args, reference_sink=args.sink, rapr=args.rapr and args.sink)
    if args.phase == "ode":
        from streamavatar.training.ode_init import train_ode as train
    else:
        from streamavatar.training.sid_train import train_sid as train
    from streamavatar.training.distributed import dist_env, shutdown

    try:
        last = train(cfg, resume=args.resume, progress=args.progress or sys.stderr.isatty())
        if dist_env(cfg.device).is_main:
            print(" ".join(f"{k}={v}" for k, v in last.items()))
    finally:
        shutdown()
    return 0


def register(tree) -> None:
    p = tree.subcommand("train", "distill",
                        "distil the teacher into the 3-step streaming student (ODE init, then SiD)", _train)
    from streamavatar.training.configs import DistillConfig

    add_config_flags(p, DistillConfig, DISTILL_FLAGS)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    sink = p.add_mutually_exclusive_group()
    sink.add_argument("--no-sink", dest="sink", action="store_false",
                      help="ablation: no Reference Sink (plain FIFO cache; implies no RAPR)")
    sink.add_argument("--sink-only", dest="rapr", action="store_false",
                      help="ablation: Reference Sink without RAPR (absolute RoPE indices)")
    p.set_defaults(sink=True, rapr=True)
    p.add_argument("--activation-checkpointing", action="store_true",
                   help="ode: recompute the student's DiT blocks in the backward pass (less memory, more compute)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--progress", action="store_true",
                   help="show progress bars even when stderr is not a terminal (e.g. redirected to a log file)")


#: The flags of ``train distill``: DistillConfig fields (defaults from the dataclass).
DISTILL_FLAGS: dict[str, dict] = {
    "teacher": {"help": "teacher run folder (teacher.json + teacher.safetensors)"},
    "data": {"help": "data folder: data synth, data prepare or data mix output"},
    "out": {"help": "run folder (checkpoints, log, student.safetensors/.json)"},
    "phase": {"choices": ("ode", "sid"),
              "help": "ode: regress teacher ODE trajectories; sid: Score identity Distillation over rollouts"},
    "init_from": {"help": "run folder the student starts from (sid: the ODE run; default for ode: the teacher)"},
    "preset": {"help": "model preset the teacher must be"},
    "batch": {"positive": True},
    "lr": {"positive": True, "help": "student learning rate"},
    "ema": {"help": "EMA decay of the exported student"},
    "steps": {"positive": True, "help": "stop after this many steps in all"},
    "max_minutes": {"flag": "--minutes", "positive": True,
                    "help": "stop after this many minutes (this invocation, trajectory generation included)"},
    "checkpoint_every": {"positive": True},
    "seed": {},
    "teacher_steps": {"positive": True, "help": "Euler steps of the teacher's ODE (trajectories)"},
    "teacher_shift": {"positive": True, "help": "sigma shift of the teacher's Euler grid"},
    "talk_scale": {"help": "teacher talk-audio guidance"},
    "listen_scale": {"help": "teacher listen-audio guidance"},
    "pairs": {"positive": True, "help": "ode: teacher trajectories to sample"},
    "pair_batch": {"positive": True, "help": "ode: trajectories sampled per teacher batch (one cache shard)"},
    "trajectories": {"help": "ode: trajectory cache folder (default RUN/trajectories)"},
    "rollout_chunks": {"positive": True, "help": "sid: chunks per self-forcing rollout (>= the RAPR layout's chunks)"},
    "fake_updates": {"positive": True, "help": "sid: fake-score updates per generator update"},
    "fake_lr": {"positive": True, "help": "sid: fake-score learning rate"},
    "sid_alpha": {"help": "sid: alpha of the SiD generator loss (SiD's paper: 1.2)"},
    "sid_sigma_shift": {"positive": True,
                        "help": "sid: shift of the critic sigma, s*u/(1+(s-1)*u) of u ~ U(min, max) (1: uniform; "
                                "Self-Forcing: 5)"},
    "feature_cache": {"help": "encoded-clip cache (default: the teacher's, else RUN/features)"},
    "split": {"choices": ("train", "val", "test")},
    "device": {"help": "where the training loop runs (e.g. cpu, cuda:0)"},
    "autocast": {"choices": ("auto", "bf16", "fp16", "fp32"),
                 "help": "mixed precision of the forward passes (auto: bf16 where the device computes it "
                         "natively, else fp32)"},
    "grad_accum": {"positive": True, "help": "ode: micro-batches per optimiser step (--batch is the global batch "
                                              "of a step; torchrun runs the ode phase too)"},
}
