"""``streamavatar train vae`` and ``streamavatar eval vae``."""

from __future__ import annotations

import argparse
import json
import sys

from streamavatar.config_flags import add_config_flags, config_from_args
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
    if args.distill_from is not None:
        return _distill(args)
    cfg = config_from_args(VAETrainConfig, args)
    result = train_vae(cfg, resume=args.resume, progress=True)
    print(json.dumps(result))
    return 0


#: ``train vae`` flags that have no meaning for ``--distill-from`` (the student's shape comes from the teacher).
NOT_WITH_DISTILL = ("init_from", "decoder_only", "gan_weight", "mouth_weight", "mouth_fraction")


def _distill(args: argparse.Namespace) -> int:
    from streamavatar.training.vae_distill import VAEDistillConfig, train_vae_distill

    given = [n for n in NOT_WITH_DISTILL if getattr(args, n) not in (None, False, 0, 0.0)]
    if given:
        raise UserInputError(f"--distill-from does not take --{given[0].replace('_', '-')}")
    cfg = config_from_args(VAEDistillConfig, args)
    print(json.dumps(train_vae_distill(cfg, resume=args.resume, progress=sys.stderr.isatty())))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from streamavatar.eval.vae_eval import evaluate_split
    from streamavatar.models.vae import VideoVAE

    _set_threads(args.threads)
    from streamavatar.hardware import resolve_dtype_name

    args.dtype = resolve_dtype_name(args.dtype)
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


#: The flags of ``train vae``: VAETrainConfig fields (defaults from the dataclass; values checked by
#: ``VAETrainConfig.validate``).
VAE_FLAGS: dict[str, dict] = {
    "data": {"help": "corpus directory (train.txt/val.txt or *.mp4 files)"},
    "out": {"help": "run directory (checkpoint.pt, train.csv, eval.csv, vae/)"},
    "preset": {"choices": ["tiny", "tiny48", "tiny64s16"],
               "help": "tiny48 (48 latent channels) or tiny (16 channels), both 4x8x8 stride, or tiny64s16 (64 "
                       "channels, 4x16x16, for 256x256 video)"},
    "minutes": {"positive": True, "help": "training-time budget"},
    "max_steps": {"help": "stop after this many steps (0 = time budget only)"},
    "batch": {"help": "clips per step"},
    "frames": {"help": "frames per clip, 1 + 4k"},
    "crop": {"help": "train on random square crops of this side (0 = full frames)"},
    "lr": {"positive": True, "help": "peak learning rate"},
    "ckpt_minutes": {"positive": True, "help": "checkpoint interval"},
    "eval_minutes": {"positive": True, "help": "validation interval"},
    "eval_clips": {"help": "validation clips"},
    "gan_weight": {"help": "patch-discriminator loss weight (0 = off)"},
    "seed": {},
    "init_from": {"help": "start from trained weights: a bundled VAE name or a VAE directory"},
    "mouth_weight": {"help": "extra L1 weight around each frame's annotated mouth (corpus clips; 0 = off)"},
    "mouth_radius": {"help": "pixel radius of the mouth weight"},
    "mouth_fraction": {"help": "fraction of training crops placed over the mouth"},
    "seam_weight": {"help": "extra L1 weight on the frame differences across the latent patch grid (against "
                            "block artefacts; 0 = off)"},
    "latent_noise": {"help": "with --decoder-only: train the decoder on latents plus Gaussian noise of std up to "
                             "this many latent stds (robust to the DiT's errors; 0 = off)"},
}


def register(tree) -> None:
    p = tree.subcommand("train", "vae", "train the tiny causal video VAE on a clip corpus (resumable)", _train)
    from streamavatar.training.configs import VAETrainConfig

    add_config_flags(p, VAETrainConfig, VAE_FLAGS)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--decoder-only", action="store_true",
                   help="train the decoder only; the encoder and the latent space stay as --init-from has them "
                        "(DiTs trained on those latents stay valid)")
    d = p.add_argument_group("decoder distillation (docs/vae.md)")
    d.add_argument("--distill-from", default=None, metavar="WAN_VAE",
                   help="train a small streaming decoder for this Wan VAE's latent space instead (a VAE directory "
                        "or an original Wan checkpoint file); uses --data/--out/--batch/--frames/--crop/--lr/"
                        "--minutes/--max-steps/--ckpt-minutes/--seed")
    d.add_argument("--distill-target", dest="target", default="teacher", choices=["teacher", "frames"],
                   help="what the decoder learns to output: the Wan decoder's frames or the true frames "
                        "(default teacher)")
    d.add_argument("--teacher-preset", default=None, choices=["wan2.1", "wan2.2"],
                   help="family of an original Wan checkpoint file given to --distill-from")
    d.add_argument("--device", default="cpu", help="where the distillation runs (e.g. cuda:0)")
    d.add_argument("--autocast", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                   help="auto (default): bf16 where the device computes it natively, else fp32")

    e = tree.subcommand("eval", "vae", "PSNR/SSIM of a VAE's streaming reconstructions on a corpus split", _eval)
    e.add_argument("--data", required=True, help="corpus directory")
    e.add_argument("--model", required=True, help="VAE directory (config.json + model.safetensors)")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp32"],
                   help="auto (default): bf16 where this CPU computes it natively, else fp32")
    e.add_argument("--max-clips", type=int, default=None)
    e.add_argument("--max-frames", type=int, default=None, help="frames per clip (default: all, cut to 1 + 4k)")
    e.add_argument("--per-clip", action="store_true", help="include every clip's PSNR")
    e.add_argument("--threads", type=int, default=None)
