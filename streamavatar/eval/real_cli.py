"""``streamavatar eval real-sync``: lip sync of a video of a real face (``[real]`` extra); ``eval train-sync-real``
lives in :mod:`streamavatar.training.sync_real_cli` (eval never imports training code)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from streamavatar.errors import UserInputError


def _real_sync(args: argparse.Namespace) -> int:
    import soundfile as sf

    from streamavatar.data.video_io import read_frames
    from streamavatar.eval.real_mouth import measure_real_mouth, real_lip_sync

    def frames_of(path: str):
        if not Path(path).is_file():
            raise UserInputError(f"video not found: {path}")
        try:
            return read_frames(path)
        except Exception as exc:  # noqa: BLE001 - PyAV raises many error types for broken files
            raise UserInputError(f"cannot decode {path}: {exc}") from exc

    frames = frames_of(args.video)
    if not Path(args.talk_audio).is_file():
        raise UserInputError(f"--talk-audio not found: {args.talk_audio}")
    try:
        audio, sr = sf.read(args.talk_audio, dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise UserInputError(f"cannot read --talk-audio {args.talk_audio}: {exc}") from exc
    source = measure_real_mouth(frames_of(args.source)).open if args.source else None
    metrics = real_lip_sync(frames, audio.mean(1), int(sr), source)["metrics"]
    if metrics["face_tracked_fraction"] == 0:
        raise UserInputError(f"no face found in any frame of {args.video}")
    print(json.dumps(metrics, indent=None if args.json else 1))
    return 0


def register(tree) -> None:
    p = tree.subcommand("eval", "real-sync", "lip sync of a video of a real face: landmark mouth opening against "
                        "the voice's energy envelope (and against a source video's mouth)", _real_sync)
    p.add_argument("video", help="the video to score (e.g. from streamavatar generate)")
    p.add_argument("--talk-audio", required=True, help="the voice that drove it (wav)")
    p.add_argument("--source", help="optional video of the same speech whose mouth the video should follow")
    p.add_argument("--json", action="store_true", help="one line of JSON")
