"""``streamavatar train teacher`` and ``streamavatar sample teacher``."""

from __future__ import annotations

import argparse
import sys

from streamavatar.cli_args import positive_float, positive_int
from streamavatar.config import DEFAULT_PRESET, DEFAULT_VAE


def _train(args: argparse.Namespace) -> int:
    import torch

    from streamavatar.training.teacher import TeacherTrainConfig, train_teacher

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TeacherTrainConfig(data=args.data, out=args.out, preset=args.preset, prediction=args.prediction,
                             batch=args.batch, lr=args.lr, steps=args.steps, max_minutes=args.minutes,
                             checkpoint_every=args.checkpoint_every, mouth_weight=args.mouth_weight,
                             nod_weight=args.nod_weight,
                             drop_talk=args.drop_talk, drop_listen=args.drop_listen,
                             drop_reference=args.drop_reference, seed=args.seed, vae=args.vae,
                             audio_backend=args.audio_backend, feature_cache=args.feature_cache,
                             split=args.split, frames=args.frames,
                             init_from=args.init_from)
    last = train_teacher(cfg, resume=args.resume, progress=sys.stderr.isatty())
    print(" ".join(f"{k}={v}" for k, v in last.items()))
    return 0


def _sample(args: argparse.Namespace) -> int:
    from streamavatar.training.teacher_sample import sample_teacher_video

    out = sample_teacher_video(args.ckpt, args.image, args.talk_audio, args.listen_audio, args.out,
                               seconds=args.seconds, steps=args.steps, talk_scale=args.talk_scale,
                               listen_scale=args.listen_scale, seed=args.seed)
    print(out)
    return 0


def register(tree) -> None:
    p = tree.subcommand("train", "teacher", "train the bidirectional audio-driven teacher (flow matching)", _train)
    p.add_argument("--data", required=True, help="data folder: data synth, data prepare or data mix output")
    p.add_argument("--out", required=True, help="run folder (checkpoints, log, exported EMA weights)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--preset", default=DEFAULT_PRESET, help=f"model preset (default {DEFAULT_PRESET})")
    p.add_argument("--prediction", default="x0", choices=("x0", "velocity"))
    p.add_argument("--batch", type=positive_int("--batch"), default=8)
    p.add_argument("--frames", type=positive_int("--frames"), default=9,
                   help="generated latent frames per window (multiple of 3)")
    p.add_argument("--lr", type=positive_float("--lr"), default=2e-4)
    p.add_argument("--steps", type=positive_int("--steps"), default=100_000, help="stop after this many steps in all")
    p.add_argument("--minutes", type=positive_float("--minutes"), default=60.0,
                   help="stop after this many minutes (this invocation)")
    p.add_argument("--checkpoint-every", type=positive_int("--checkpoint-every"), default=100)
    p.add_argument("--mouth-weight", type=float, default=8.0, help="extra loss weight around the mouth")
    p.add_argument("--nod-weight", type=float, default=0.0,
                   help="extra loss weight on latent frames during the ground truth's listening nods")
    p.add_argument("--drop-talk", type=float, default=0.1)
    p.add_argument("--drop-listen", type=float, default=0.1)
    p.add_argument("--drop-reference", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vae", default=DEFAULT_VAE, help=f"a bundled VAE name ({DEFAULT_VAE!r}) or a VAE directory; its "
                   "latent channels must match --preset")
    p.add_argument("--audio-backend", default="whisper-tiny", choices=("whisper-tiny", "mel"))
    p.add_argument("--feature-cache", default=None, help="where encoded clips are cached (default RUN/features)")
    p.add_argument("--split", default="train", choices=("train", "val", "test"), help="corpus split to train on")
    p.add_argument("--init-from", default=None, help="start from the exported weights of an earlier run folder")
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
