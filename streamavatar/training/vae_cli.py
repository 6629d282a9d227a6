"""``streamavatar train vae`` and ``streamavatar eval vae``."""

from __future__ import annotations

import argparse
import json
import sys

from streamavatar.cli_args import positive_float
from streamavatar.config import DEFAULT_VAE
from streamavatar.errors import UserInputError


def _set_threads(n: int | None) -> None:
    import torch  # loaded only when a command runs

    if n is not None:
        if n < 1:
            raise UserInputError(f"--threads must be >= 1, got {n}")
        torch.set_num_threads(n)


def _train(args: argparse.Namespace) -> int:
    from streamavatar.training.vae import VAETrainConfig, train_vae

    _set_threads(args.threads)
    cfg = VAETrainConfig(data=args.data, out=args.out, preset=args.preset,
                         batch=args.batch, frames=args.frames, crop=args.crop, lr=args.lr,
                         minutes=args.minutes, max_steps=args.max_steps, ckpt_minutes=args.ckpt_minutes,
                         eval_minutes=args.eval_minutes, eval_clips=args.eval_clips, gan_weight=args.gan_weight,
                         seed=args.seed, init_from=args.init_from, decoder_only=args.decoder_only,
                         mouth_weight=args.mouth_weight, mouth_radius=args.mouth_radius,
                         mouth_fraction=args.mouth_fraction)
    result = train_vae(cfg, resume=args.resume, progress=True)
    print(json.dumps(result))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from streamavatar.eval.vae_eval import evaluate_split
    from streamavatar.models.vae import VideoVAE

    _set_threads(args.threads)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    vae = VideoVAE.from_pretrained(args.model, dtype=dtype)
    r = evaluate_split(vae, args.data, args.split, max_clips=args.max_clips, max_frames=args.max_frames,
                       progress=sys.stderr.isatty())
    r["dtype"] = args.dtype
    r["model"] = args.model
    if not args.per_clip:
        r.pop("psnr_per_clip")
    print(json.dumps(r))
    return 0


def register(tree) -> None:
    p = tree.subcommand("train", "vae", "train the tiny causal video VAE on a clip corpus (resumable)", _train)
    p.add_argument("--data", required=True, help="corpus directory (train.txt/val.txt or *.mp4 files)")
    p.add_argument("--out", required=True, help="run directory (checkpoint.pt, train.csv, eval.csv, vae/)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--preset", default=DEFAULT_VAE, choices=["tiny", "tiny48", "tiny64s16"],
                   help=f"tiny48 (48 latent channels) or tiny (16 channels), both 4x8x8 stride, or tiny64s16 (64 "
                        f"channels, 4x16x16, for 256x256 video); default {DEFAULT_VAE}, the default model's")
    p.add_argument("--minutes", type=positive_float("--minutes"), default=45.0,
                   help="training-time budget (default 45)")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = time budget only)")
    p.add_argument("--batch", type=int, default=4, help="clips per step (default 4)")
    p.add_argument("--frames", type=int, default=9, help="frames per clip, 1 + 4k (default 9)")
    p.add_argument("--crop", type=int, default=64, help="train on random square crops of this side (0 = full "
                   "frames; default 64)")
    p.add_argument("--lr", type=positive_float("--lr"), default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--ckpt-minutes", type=positive_float("--ckpt-minutes"), default=3.0,
                   help="checkpoint interval (default 3)")
    p.add_argument("--eval-minutes", type=positive_float("--eval-minutes"), default=5.0,
                   help="validation interval (default 5)")
    p.add_argument("--eval-clips", type=int, default=4, help="validation clips (default 4)")
    p.add_argument("--gan-weight", type=float, default=0.0, help="patch-discriminator loss weight (0 = off)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init-from", default=None,
                   help=f"start from trained weights: {DEFAULT_VAE!r} (bundled) or a VAE directory")
    p.add_argument("--decoder-only", action="store_true",
                   help="train the decoder only; the encoder and the latent space stay as --init-from has them "
                        "(DiTs trained on those latents stay valid)")
    p.add_argument("--mouth-weight", type=float, default=0.0,
                   help="extra L1 weight around each frame's annotated mouth (corpus clips; 0 = off)")
    p.add_argument("--mouth-radius", type=float, default=6.0, help="pixel radius of the mouth weight (default 6)")
    p.add_argument("--mouth-fraction", type=float, default=0.0,
                   help="fraction of training crops placed over the mouth (default 0)")

    e = tree.subcommand("eval", "vae", "PSNR/SSIM of a VAE's streaming reconstructions on a corpus split", _eval)
    e.add_argument("--data", required=True, help="corpus directory")
    e.add_argument("--model", required=True, help="VAE directory (config.json + model.safetensors)")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    e.add_argument("--max-clips", type=int, default=None)
    e.add_argument("--max-frames", type=int, default=None, help="frames per clip (default: all, cut to 1 + 4k)")
    e.add_argument("--per-clip", action="store_true", help="include every clip's PSNR")
    e.add_argument("--threads", type=int, default=None)
