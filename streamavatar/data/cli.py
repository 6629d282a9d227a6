"""``streamavatar data …`` commands: build the synthetic corpus, check a data folder."""

from __future__ import annotations

import argparse
import json

from streamavatar.cli_args import positive_float, positive_int
from streamavatar.errors import UserInputError


def _synth(args: argparse.Namespace) -> int:
    from streamavatar.data.synthetic import SynthConfig, build_corpus

    cfg = SynthConfig(clips=args.clips, seconds=args.seconds, seed=args.seed, resolution=args.resolution,
                      clips_per_identity=args.clips_per_identity, workers=args.workers)
    index = build_corpus(args.out, cfg, progress=not args.quiet)
    counts = {s: sum(1 for c in index["clips"] if c["split"] == s) for s in ("train", "val", "test")}
    summary = {"out": str(args.out), "clips": len(index["clips"]), "identities": index["n_identities"],
               "frames_per_clip": index["n_frames"], "resolution": index["resolution"], "fps": index["fps"],
               "split_clips": counts}
    print(json.dumps(summary))
    return 0


def _check(args: argparse.Namespace) -> int:
    from streamavatar.data.dataset import scan_data_folder

    report = scan_data_folder(args.data, min_frames=args.min_frames)
    if report.broken:
        path, why = report.broken[0]
        more = f" (and {len(report.broken) - 1} more)" if len(report.broken) > 1 else ""
        raise UserInputError(f"{len(report.broken)} unusable file(s) in {args.data}: {path}: {why}{more}")
    if not report.sources:
        raise UserInputError(f"no usable clips in {args.data}")
    print(json.dumps(report.summary()))
    return 0


def _sheet(args: argparse.Namespace) -> int:
    from streamavatar.data.contact_sheet import contact_sheet

    out = args.out
    if not out.lower().endswith(".png"):
        raise UserInputError(f"--out must be a .png file, got {out}")
    from streamavatar.atomic import atomic_output

    sheet = contact_sheet(args.data, n_identities=args.identities)
    with atomic_output(out) as tmp:
        sheet.save(tmp, format="PNG")
    print(out)
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from streamavatar.data.prepare import PrepareConfig, parse_shard, prepare_folder

    cfg = PrepareConfig(resolution=args.resolution, min_seconds=args.min_seconds, max_seconds=args.max_seconds,
                        min_face_px=args.min_face_px, split=args.split)
    summary = prepare_folder(args.videos, args.out, cfg, parse_shard(args.shard), progress=not args.quiet)
    print(json.dumps(summary))
    return 0


def _mix(args: argparse.Namespace) -> int:
    from streamavatar.data.mix import build_mixture, parse_source

    print(json.dumps(build_mixture([parse_source(s) for s in args.source], args.out)))
    return 0


def register(tree) -> None:
    p = tree.subcommand("data", "synth", "render the synthetic talking/listening avatar corpus (mp4 + wavs + "
                        "per-frame ground truth, identity-disjoint splits)", _synth)
    p.add_argument("--out", required=True, help="output folder (created; must be empty or an earlier corpus)")
    p.add_argument("--clips", type=positive_int("--clips"), required=True, help="number of clips")
    p.add_argument("--seconds", type=positive_float("--seconds"), required=True, help="seconds per clip")
    p.add_argument("--seed", type=int, default=0, help="corpus seed: same seed, identical corpus (default 0)")
    p.add_argument("--resolution", type=int, default=128, help="square frame size: 128 (default) or 256")
    p.add_argument("--clips-per-identity", type=positive_int("--clips-per-identity"), default=2,
                   help="clips showing each identity (default 2)")
    p.add_argument("--workers", type=positive_int("--workers"), default=2, help="worker processes (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    c = tree.subcommand("data", "check", "check a data folder (synthetic corpus or real talking videos): "
                        "counts usable clips, exits 2 naming the first unreadable or silent file", _check)
    c.add_argument("--data", required=True, help="corpus folder or folder of mp4 files")
    c.add_argument("--min-frames", type=positive_int("--min-frames"), default=1,
                   help="clips shorter than this count as unusable (default 1)")
    s = tree.subcommand("data", "sheet", "contact sheet PNG of a synthetic corpus: a talking and a listening frame "
                        "per identity", _sheet)
    s.add_argument("--data", required=True, help="synthetic corpus folder")
    s.add_argument("--out", required=True, help="PNG file to write")
    s.add_argument("--identities", type=positive_int("--identities"), default=16, help="identities (default 16)")
    r = tree.subcommand("data", "prepare", "real talking videos -> a training folder in the corpus layout: face "
                        "tracking, stable upper-body crops per shot, 25 fps, 16 kHz talk/listen audio (separate "
                        "tracks or active-speaker detection), filters and a report (docs/real_data.md)", _prepare)
    r.add_argument("--videos", required=True, help="folder of videos (.mp4 .mov .mkv .webm), searched recursively")
    r.add_argument("--out", required=True, help="output folder (new, or the same folder for every shard)")
    r.add_argument("--resolution", type=int, default=128, help="square output size, multiple of 16 (default 128)")
    r.add_argument("--shard", default=None, help="I/N: process every N-th video starting at I (default: torchrun's "
                   "RANK/WORLD_SIZE, else 0/1); the last shard to finish merges the manifests")
    r.add_argument("--split", default="auto", help="auto (train/val/test subfolders, else a hash of the identity) "
                   "or put every clip into train, val or test")
    r.add_argument("--min-seconds", type=positive_float("--min-seconds"), default=2.0,
                   help="shorter face runs are dropped as 'cut too short' (default 2)")
    r.add_argument("--max-seconds", type=positive_float("--max-seconds"), default=20.0,
                   help="longer runs are split into clips of at most this (default 20)")
    r.add_argument("--min-face-px", type=positive_float("--min-face-px"), default=48.0,
                   help="median face height (forehead to chin) in source pixels below which a run is dropped "
                   "as 'face too small' (default 48)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    m = tree.subcommand("data", "mix", "one training folder over several corpus / prepared folders with a weight "
                        "per source (share of the training windows); links, no copies", _mix)
    m.add_argument("--source", action="append", required=True, help="DIR or DIR:WEIGHT (repeat per source)")
    m.add_argument("--out", required=True, help="new folder for the mixture")
