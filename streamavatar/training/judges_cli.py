"""Commands that train the evaluation judges: ``streamavatar eval train-judge`` / ``eval train-sync`` (their
historical names, kept) and the same as ``streamavatar train judge`` / ``train sync``.

The judges are trained here, in ``training/``, and only *used* by ``eval/`` (which never imports training code).
"""

from __future__ import annotations

import argparse
import json
import sys

from streamavatar.eval.cli import _positive_float, _positive_int


def _progress() -> bool:
    return sys.stderr.isatty()


def _train_judge(args: argparse.Namespace) -> int:
    import torch

    from streamavatar.training.judge import JudgeTrainConfig, train_and_save_judge

    torch.set_num_threads(max(1, args.threads))
    cfg = JudgeTrainConfig(minutes=args.minutes, seed=args.seed, lr=args.lr, init=args.init)
    report = train_and_save_judge(args.corpus, args.out, cfg, progress=_progress())
    print(json.dumps({k: report[k] for k in ("train", "val", "test")}, indent=1))
    return 0


def _train_sync(args: argparse.Namespace) -> int:
    import torch

    from streamavatar.training.sync import SyncTrainConfig, train_and_save_syncnet

    torch.set_num_threads(max(1, args.threads))
    report = train_and_save_syncnet(args.corpus, args.out, SyncTrainConfig(minutes=args.minutes, seed=args.seed),
                                    progress=_progress())
    print(json.dumps(report, indent=1))
    return 0


def register(tree) -> None:
    for group, judge_name, sync_name in (("eval", "train-judge", "train-sync"), ("train", "judge", "sync")):
        p = tree.subcommand(group, judge_name, "train the avatar-parameter judge on the corpus train split and "
                            "report its accuracy on held-out identities", _train_judge)
        p.add_argument("--corpus", required=True)
        p.add_argument("--out", required=True, help="folder for judge.safetensors + judge.json")
        p.add_argument("--minutes", type=_positive_float, default=20.0, help="wall-clock training budget (default 20)")
        p.add_argument("--lr", type=_positive_float, default=2e-3, help="peak learning rate (cosine decay)")
        p.add_argument("--init", help="continue from the judge saved in this folder")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=_positive_int, default=2)

        p = tree.subcommand(group, sync_name, "train the contrastive audio-mouth sync model on the corpus",
                            _train_sync)
        p.add_argument("--corpus", required=True)
        p.add_argument("--out", required=True, help="folder for syncnet.safetensors + syncnet.json")
        p.add_argument("--minutes", type=_positive_float, default=6.0, help="wall-clock training budget (default 6)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=_positive_int, default=2)
