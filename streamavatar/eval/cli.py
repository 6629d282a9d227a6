"""``streamavatar eval …`` commands: score generated clips, check the mouth measurement.

Training the judges (``eval train-judge``, ``eval train-sync``) lives in :mod:`streamavatar.training.judges_cli`:
``eval/`` only measures."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from streamavatar.errors import UserInputError


def _progress() -> bool:
    return sys.stderr.isatty()


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _run(args: argparse.Namespace) -> int:
    import torch

    from streamavatar.eval.evaluation import evaluate_folder
    from streamavatar.eval.judge import load_judge
    from streamavatar.eval.report import markdown_table, write_report
    from streamavatar.eval.speed import read_speed
    from streamavatar.eval.syncnet import load_syncnet

    if not Path(args.corpus, "clips").is_dir():
        raise UserInputError(f"--corpus must be a corpus folder with clips/, got {args.corpus}")
    from streamavatar.eval.real_mouth import is_real_folder

    if is_real_folder(args.corpus):  # prepared real videos: the landmark lip-sync measures (docs/real_data.md)
        return _run_real(args)
    speed = read_speed(args.bench) if args.bench else None
    torch.set_num_threads(max(1, args.threads))
    result, clips = evaluate_folder(args.generated, args.corpus, load_judge(args.judge), load_syncnet(args.syncnet),
                                    baseline=args.baseline, speed=speed, progress=_progress())
    paths = write_report(result, clips, args.out)
    print(markdown_table(result["summary"]))
    print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0


def _run_real(args: argparse.Namespace) -> int:
    from streamavatar.eval.real_mouth import evaluate_real_folder, real_report_markdown

    result = evaluate_real_folder(args.generated, args.corpus, progress=_progress())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=1))
    table = real_report_markdown(result)
    (out / "report.md").write_text(f"# Real-face lip sync: {args.generated}\n\n{table}")
    print(table)
    print(f"wrote {out / 'metrics.json'}, {out / 'report.md'}", file=sys.stderr)
    return 0


def _truth(args: argparse.Namespace) -> int:
    from streamavatar.eval.corpus_clip import split_clip_ids

    ids = split_clip_ids(args.corpus, args.split)[:args.clips]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for cid in ids:
        shutil.copyfile(Path(args.corpus, "clips", cid, "video.mp4"), out / f"{cid}.mp4")
    print(f"copied {len(ids)} ground-truth clip(s) of split '{args.split}' to {out}")
    return 0


def _mouth_check(args: argparse.Namespace) -> int:
    from streamavatar.eval.mouth_validation import fit_calibration, validate_mouth_measure

    if args.fit:
        xs, ys = fit_calibration(args.corpus, progress=_progress())
        print(json.dumps({"calibration_in": xs, "calibration_out": ys}))
        return 0
    print(json.dumps(validate_mouth_measure(args.corpus, args.split, args.clips, progress=_progress()), indent=1))
    return 0


def register(tree) -> None:
    p = tree.subcommand("eval", "run", "score GENERATED/<clip_id>.mp4 clips against the corpus clips they were "
                        "generated from (lip sync, listening motion, drift, FID/FVD proxies, speed)", _run)
    p.add_argument("generated", help="folder of <clip_id>.mp4 files, each generated from corpus clip <clip_id>")
    p.add_argument("--corpus", required=True, help="the corpus folder (with clips/<clip_id>/)")
    p.add_argument("--out", required=True, help="folder for metrics.json, report.md, drift.png, sync_scatter.png")
    p.add_argument("--baseline", help="folder of silent-audio baseline clips <clip_id>.mp4 (listening motion)")
    p.add_argument("--bench", help="JSON from 'streamavatar bench stream --json' (RTF, FFD)")
    p.add_argument("--judge", help="judge folder (default: the shipped streamavatar/assets/judge)")
    p.add_argument("--syncnet", help="sync model folder (default: the shipped streamavatar/assets/syncnet)")
    p.add_argument("--threads", type=_positive_int, default=2, help="torch CPU threads (default 2)")

    p = tree.subcommand("eval", "truth", "copy ground-truth videos of a corpus split into a GENERATED-style folder "
                        "(scoring it gives the ceiling a perfect generator reaches)", _truth)
    p.add_argument("--corpus", required=True)
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--clips", type=_positive_int, default=None, help="only the first N clips of the split")
    p.add_argument("--out", required=True)

    p = tree.subcommand("eval", "mouth-check", "validate the exact mouth-opening measurement against the corpus "
                        "ground truth (or refit its calibration with --fit)", _mouth_check)
    p.add_argument("--corpus", required=True)
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--clips", type=_positive_int, default=None, help="only the first N clips of the split")
    p.add_argument("--fit", action="store_true", help="refit the calibration table on the train split")
