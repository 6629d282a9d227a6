"""``streamavatar train adversarial``: Stage 2, adversarial refinement of a distilled student with D_CA."""

from __future__ import annotations

import argparse
import sys

from streamavatar.config_flags import add_config_flags, config_from_args


def _train(args: argparse.Namespace) -> int:
    import torch

    from streamavatar.training.adversarial_train import AdversarialConfig, train_adversarial

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config_from_args(AdversarialConfig, args)
    last = train_adversarial(cfg, resume=args.resume, progress=args.progress or sys.stderr.isatty())
    print(" ".join(f"{k}={v}" for k, v in last.items()))
    return 0


def register(tree) -> None:
    p = tree.subcommand("train", "adversarial",
                        "Stage 2: refine a distilled student against the consistency-aware discriminator", _train)
    from streamavatar.training.configs import AdversarialConfig

    add_config_flags(p, AdversarialConfig, ADVERSARIAL_FLAGS)
    p.add_argument("--plain-discriminator", action="store_true",
                   help="ablation: a plain discriminator (per-frame realism head only, no consistency head)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--progress", action="store_true",
                   help="show progress bars even when stderr is not a terminal (e.g. redirected to a log file)")


#: The flags of ``train adversarial``: AdversarialConfig fields (defaults from the dataclass).
ADVERSARIAL_FLAGS: dict[str, dict] = {
    "student": {"help": "distilled student run folder to refine (student.json + student.safetensors)"},
    "teacher": {"help": "teacher run folder (the discriminator's backbone starts as a copy of it)"},
    "data": {"help": "data folder: data synth, data prepare or data mix output (the real clips)"},
    "out": {"help": "run folder (checkpoints, log, student.safetensors/.json)"},
    "preset": {"help": "model preset the teacher and the student must be"},
    "rollout_chunks": {"positive": True, "help": "chunks per self-forcing rollout (past the first eviction)"},
    "batch": {"positive": True},
    "lr": {"positive": True, "help": "student learning rate"},
    "d_lr": {"positive": True, "help": "discriminator learning rate"},
    "ema": {"help": "EMA decay of the exported student"},
    "steps": {"positive": True, "help": "stop after this many steps in all"},
    "max_minutes": {"flag": "--minutes", "positive": True, "help": "stop after this many minutes (this invocation)"},
    "checkpoint_every": {"positive": True, "help": "checkpoint every N steps"},
    "checkpoint_minutes": {"positive": True, "help": "and every M minutes of training"},
    "seed": {},
    "global_weight": {"help": "weight of the consistency head's loss (local head: 1)"},
    "r1_weight": {"help": "weight of the approximate R1 penalty (real clips)"},
    "r2_weight": {"help": "weight of the approximate R2 penalty (generated clips)"},
    "r_sigma": {"positive": True, "help": "perturbation scale of the finite-difference R1/R2"},
    "critic_sigma_min": {"help": "lowest noise level of the discriminator's inputs"},
    "critic_sigma_max": {"help": "highest noise level of the discriminator's inputs"},
    "critic_sigma_shift": {"positive": True, "help": "shift of the discriminator's noise levels (1: uniform)"},
    "sid_weight": {"help": "weight of Stage 1's SiD loss kept in the generator objective (0: off)"},
    "fake_updates": {"positive": True, "help": "with --sid-weight: fake-score updates per step"},
    "fake_lr": {"positive": True, "help": "with --sid-weight: fake-score learning rate"},
    "sid_alpha": {"help": "with --sid-weight: alpha of the SiD loss"},
    "sid_sigma_shift": {"positive": True, "help": "with --sid-weight: shift of the SiD critic sigma"},
    "talk_scale": {"help": "with --sid-weight: teacher talk-audio guidance"},
    "listen_scale": {"help": "with --sid-weight: teacher listen-audio guidance"},
    "feature_cache": {"help": "encoded-clip cache (default: the teacher's, else RUN/features)"},
    "split": {"choices": ("train", "val", "test")},
    "device": {"help": "where the training loop runs (e.g. cpu, cuda:0)"},
    "autocast": {"choices": ("auto", "bf16", "fp16", "fp32"),
                 "help": "mixed precision (auto: bf16 where the device computes it natively, else fp32) "
                         "of the generator's forward passes"},
}
