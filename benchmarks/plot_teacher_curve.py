"""Teacher learning curves (lip sync, appearance, listening motion) from `streamavatar eval run` folders.

Each point is one evaluation folder of the 8-identity protocol in docs/teacher.md (``GEN_DIR/eval/metrics.json``,
plus ``GEN_DIR/talk_r.txt`` for the mouth r inside agent turns when it exists), tagged with its training
minutes and listen guidance scale:

    PYTHONPATH=. python benchmarks/plot_teacher_curve.py --out docs \\
        --point 40:1:/work/exp/t700_8 --point 92:1:/work/exp/t1300_8 --point 162:1:/work/exp/nod_final8 \\
        --point 162:3:/work/exp/nod_final8_ls3 --point 227:1:/work/exp/t48_887_8 --point 227:3:/work/exp/t48_887_ls3

writes ``teacher_curve_sync.png`` (listen scale 1 points) and ``teacher_curve_listening.png`` (one series per
listen scale) and prints the numbers as JSON lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from streamavatar.eval.curve_png import line_chart


def read_point(spec: str) -> dict:
    """``MINUTES:LISTEN_SCALE:DIR`` → the summary numbers of that evaluation."""
    minutes, scale, folder = spec.split(":", 2)
    summary = json.loads((Path(folder) / "eval" / "metrics.json").read_text())["summary"]
    point = {"minutes": float(minutes), "listen_scale": float(scale), "dir": folder,
             "mouth_r": summary["mouth_r_vs_annotation"], "identity": summary["identity_distance"],
             "identity_gt": summary["identity_distance_ground_truth"],
             "head_var": summary["listen_head_var_deg2_generated"],
             "head_var_gt": summary["listen_head_var_deg2_ground_truth"], "fid": summary["fid_proxy"]}
    talk = Path(folder) / "talk_r.txt"
    if talk.is_file():
        point["mouth_r_in_turns"] = json.loads(talk.read_text().splitlines()[0])["mean_r_talk"]
    return point


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--point", action="append", required=True, help="MINUTES:LISTEN_SCALE:EVAL_GEN_DIR")
    ap.add_argument("--out", default="docs", help="folder for the two PNGs")
    ap.add_argument("--xlabel", default="training minutes (nod weight 6 from minute 92; tiny48 latents from 162)")
    args = ap.parse_args()
    points = sorted((read_point(s) for s in args.point), key=lambda p: (p["listen_scale"], p["minutes"]))
    for p in points:
        print(json.dumps(p))
    base = [p for p in points if p["listen_scale"] == 1]
    sync = {"mouth r vs annotation, whole clips": [(p["minutes"], p["mouth_r"]) for p in base],
            "mouth r inside agent turns": [(p["minutes"], p["mouth_r_in_turns"]) for p in base
                                           if "mouth_r_in_turns" in p],
            f"identity distance to reference (ground truth {base[-1]['identity_gt']:.2f})":
                [(p["minutes"], p["identity"]) for p in base]}
    out = Path(args.out)
    line_chart({k: v for k, v in sync.items() if v}, out / "teacher_curve_sync.png",
               "teacher: lip sync and appearance, 8 held-out test identities", args.xlabel, "value",
               hline=(0.6, "acceptance r 0.6"))
    listening = {f"listen scale {s:g}": [(p["minutes"], p["head_var"]) for p in points if p["listen_scale"] == s]
                 for s in sorted({p["listen_scale"] for p in points})}
    gt = points[0]["head_var_gt"]
    line_chart(listening, out / "teacher_curve_listening.png",
               f"teacher: listening head variance (deg^2, judge), ground truth {gt:.1f}", args.xlabel, "deg^2",
               hline=(gt, "ground truth"))


if __name__ == "__main__":
    main()
