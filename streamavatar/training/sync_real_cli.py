"""``streamavatar eval train-sync-real``: the SyncNet-style sync model on a prepared real folder.

The work is :mod:`streamavatar.training.sync_real`; it lives under ``training/`` because ``eval/`` never imports
training code. This module stays free of heavy imports so that building the CLI's parser is fast.
"""

from __future__ import annotations

import argparse
import json
import sys


def _train_sync_real(args: argparse.Namespace) -> int:
    import torch

    from streamavatar.training.sync import SyncTrainConfig
    from streamavatar.training.sync_real import train_real_syncnet

    torch.set_num_threads(max(1, args.threads))
    report = train_real_syncnet(args.data, args.out, SyncTrainConfig(minutes=args.minutes, seed=args.seed,
                                                                     batch=args.batch),
                                eval_split=args.eval_split, progress=sys.stderr.isatty())
    print(json.dumps(report, indent=1, default=str))
    return 0


def register(tree) -> None:
    from streamavatar.cli_args import positive_float, positive_int

    p = tree.subcommand("eval", "train-sync-real", "train the SyncNet-style sync model on a prepared real folder "
                        "(streamavatar data prepare)", _train_sync_real)
    p.add_argument("--data", required=True, help="prepared folder")
    p.add_argument("--out", required=True, help="folder for syncnet.safetensors + syncnet.json")
    p.add_argument("--minutes", type=positive_float("--minutes"), default=6.0, help="training budget (default 6)")
    p.add_argument("--batch", type=positive_int("--batch"), default=64, help="windows per step (default 64)")
    p.add_argument("--eval-split", default="test", choices=("train", "val", "test"), help="held-out split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int("--threads"), default=2)
