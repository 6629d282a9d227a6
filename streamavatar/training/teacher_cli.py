"""``streamavatar train teacher`` and ``streamavatar sample teacher``."""

from __future__ import annotations

import argparse
import sys

from streamavatar.config_flags import add_config_flags, config_from_args


def _train(args: argparse.Namespace) -> int:
    import torch

    from streamavatar.training.distributed import dist_env, shutdown
    from streamavatar.training.teacher import TeacherTrainConfig, train_teacher

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config_from_args(TeacherTrainConfig, args)
    try:
        last = train_teacher(cfg, resume=args.resume, progress=sys.stderr.isatty())
        if dist_env(cfg.device).is_main:
            print(" ".join(f"{k}={v}" for k, v in last.items()))
    finally:
        shutdown()
    return 0


#: The flags of ``train teacher``: TeacherTrainConfig fields (defaults from the dataclass).
TEACHER_FLAGS: dict[str, dict] = {
    "data": {"help": "data folder: data synth, data prepare or data mix output"},
    "out": {"help": "run folder (checkpoints, log, exported EMA weights)"},
    "preset": {"help": "model preset"},
    "prediction": {"choices": ("x0", "velocity")},
    "batch": {"positive": True},
    "frames": {"positive": True, "help": "generated latent frames per window (multiple of 3)"},
    "lr": {"positive": True},
    "steps": {"positive": True, "help": "stop after this many steps in all"},
    "max_minutes": {"flag": "--minutes", "positive": True, "help": "stop after this many minutes (this invocation)"},
    "checkpoint_every": {"positive": True},
    "grad_clip": {"positive": True, "help": "clip the global gradient norm (all ranks) to this"},
    "mouth_weight": {"help": "extra loss weight around the mouth"},
    "nod_weight": {"help": "extra loss weight on latent frames during the ground truth's listening nods"},
    "drop_talk": {},
    "drop_listen": {},
    "drop_reference": {},
    "seed": {},
    "vae": {"help": "a bundled VAE name or a VAE directory; its latent channels must match --preset"},
    "audio_backend": {"choices": ("whisper-tiny", "mel")},
    "feature_cache": {"help": "where encoded clips are cached (default RUN/features)"},
    "split": {"choices": ("train", "val", "test"), "help": "corpus split to train on"},
    "init_from": {"help": "start from the exported weights of an earlier run folder"},
    "device": {"help": "where the training loop runs (e.g. cpu, cuda:0)"},
    "autocast": {"choices": ("auto", "bf16", "fp16", "fp32"),
                 "help": "mixed precision of the forward passes (auto: bf16 where the device computes it "
                         "natively, else fp32)"},
    "grad_accum": {"positive": True, "help": "micro-batches per optimiser step (--batch is the global batch of a "
                                              "step: ranks x micro-batches x micro-batch size)"},
}


def _sample(args: argparse.Namespace) -> int:
    from streamavatar.training.teacher_sample import sample_teacher_video

    out = sample_teacher_video(args.ckpt, args.image, args.talk_audio, args.listen_audio, args.out,
                               seconds=args.seconds, steps=args.steps, talk_scale=args.talk_scale,
                               listen_scale=args.listen_scale, seed=args.seed)
    print(out)
    return 0


def register(tree) -> None:
    p = tree.subcommand("train", "teacher", "train the bidirectional audio-driven teacher (flow matching)", _train)
    from streamavatar.training.configs import TeacherTrainConfig

    add_config_flags(p, TeacherTrainConfig, TEACHER_FLAGS)
    p.add_argument("--activation-checkpointing", action="store_true",
                   help="recompute the DiT blocks in the backward pass (less memory, more compute)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--threads", type=int, default=None)

    s = tree.subcommand("sample", "teacher", "sample a clip from a trained teacher", _sample)
    s.add_argument("--ckpt", required=True, help="teacher run folder")
    s.add_argument("--image", required=True)
    s.add_argument("--talk-audio", required=True)
    s.add_argument("--listen-audio", default=None)
    s.add_argument("--out", required=True, help="output .mp4")
    s.add_argument("--seconds", type=float, default=None, help="default: the talk audio's length")
    s.add_argument("--steps", type=int, default=40)
    s.add_argument("--talk-scale", type=float, default=1.0)
    s.add_argument("--listen-scale", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
