"""The trained Stage 1/2 ablation as one markdown table beside the paper's (docs/stage2.md).

Rows whose folder is missing under ``--eval`` are left out, so one script serves the ablation and the longer
Stage 2 comparison.

Reads, per row, the ``eval run`` report of the 8 held-out identities (``EVAL/NAME/report/metrics.json``) and the
5-minute own-layout stream of ``benchmarks/ablation_long_stream.py --variants own`` (``EVAL/NAME/long/
ablation.json``); a missing part prints as "–". The paper's column is paper.md §7.4 (FID on its short set).

    PYTHONPATH=. python benchmarks/stage2_ablation_table.py --eval /work/eval_abl [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: (folder name, label, the paper's FID for the same row or None): paper.md §7.4 (Table 1, lower block).
ROWS = [
    ("default", "ODE initialisation (shipped default)", None),
    ("abl_nosink", "+ SiD, no sink (Self-Forcing baseline)", 96.58),
    ("abl_sink", "+ SiD, Reference Sink", 88.75),
    ("abl_sinkrapr", "+ SiD, Reference Sink + RAPR", 81.63),
    ("abl_gan", "+ plain GAN (sink + RAPR student)", 79.68),
    ("abl_dca", "+ D_CA (sink + RAPR student)", 74.21),
    ("abl_sinkrapr_paper", "SiD sink + RAPR, α 1.2, σ shift 5", None),
    # the untrained control: the shipped default's weights streamed in the other two layouts
    ("default_nosink", "default weights, streamed without the sink", None),
    ("default_sink", "default weights, streamed with the sink, no RAPR", None),
    # Stage 2 at a longer budget (320 steps each, batch 1), straight from the shipped default (docs/stage2.md)
    ("s2_plain", "+ plain GAN, 320 steps from the default", None),
    ("s2_dca", "+ D_CA, 320 steps from the default", None),
]


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def row_values(folder: Path) -> dict:
    """The table's numbers of one evaluated model folder (None where its files are missing)."""
    out: dict = {}
    metrics = _read(folder / "report" / "metrics.json")
    s = metrics["summary"] if metrics else {}
    for key in ("mouth_r_vs_annotation", "mouth_mae_vs_annotation", "sync_confidence", "listen_head_var_deg2_generated",
                "identity_distance", "background_error", "blockiness_8", "fid_proxy", "fvd_proxy"):
        out[key] = s.get(key)
    long = _read(folder / "long" / "ablation.json")
    if long:
        (variant, m), = long["variants"].items()
        out["long_variant"] = variant
        out["long_identity_per_minute"] = m["identity_distance"]["per_minute"]
        out["long_identity_slope"] = m["identity_distance"]["slope_per_minute"]
        out["long_background_per_minute"] = m["background_error"]["per_minute"]
        out["long_background_slope"] = m["background_error"]["slope_per_minute"]
        out["long_mouth_r_per_minute"] = m["mouth_r_per_minute"]
    return out


def _f(x, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def _span(per_minute: list | None, slope: float | None, fmt: str) -> str:
    """"first → last" of a per-minute series, with its slope per minute when given."""
    if not per_minute:
        return "–"
    text = f"{_f(per_minute[0], fmt)} → {_f(per_minute[-1], fmt)}"
    return text if slope is None else f"{text} ({slope:+.4f})"


def table(values: dict[str, dict]) -> str:
    head = ("| row | paper FID | FID / FVD proxy | mouth r | mouth MAE | sync conf | listening head var. "
            "| identity dist. | background error | 5-min identity dist., min 1 → 5 (slope / min) "
            "| 5-min background error, min 1 → 5 (slope / min) | 5-min mouth r, min 1 → 5 |")
    lines = [head, "|" + " --- |" * 12]
    for name, label, paper in ROWS:
        v = values.get(name)
        if v is None:
            continue
        mouth_s = _span(v.get("long_mouth_r_per_minute"), None, ".3f")
        ident_s = _span(v.get("long_identity_per_minute"), v.get("long_identity_slope"), ".3f")
        bg_s = _span(v.get("long_background_per_minute"), v.get("long_background_slope"), ".2f")
        lines.append(
            f"| {label} | {_f(paper, '.2f')} | {_f(v['fid_proxy'], '.1f')} / {_f(v['fvd_proxy'], '.1f')} | "
            f"{_f(v['mouth_r_vs_annotation'], '.3f')} | {_f(v['mouth_mae_vs_annotation'], '.3f')} | "
            f"{_f(v['sync_confidence'], '.2f')} | {_f(v['listen_head_var_deg2_generated'], '.2f')} | "
            f"{_f(v['identity_distance'], '.3f')} | {_f(v['background_error'], '.2f')} | "
            f"{ident_s} | {bg_s} | {mouth_s} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eval", required=True, help="folder holding one evaluated folder per row")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args()
    root = Path(args.eval)
    values = {name: row_values(root / name) for name, _, _ in ROWS if (root / name).is_dir()}
    print(table(values))
    if args.json:
        Path(args.json).write_text(json.dumps(values, indent=1))


if __name__ == "__main__":
    main()
