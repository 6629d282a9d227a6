"""Writing an evaluation to a folder: ``metrics.json``, ``report.md`` and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from streamavatar.eval.evaluation import ClipEvaluation
from streamavatar.eval.plots import line_plot, scatter_plot

#: Rows of the markdown table: (summary key, label, direction).
TABLE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("mouth_r", "mouth opening r vs ground-truth video (exact measure)", "higher"),
    ("mouth_mae", "mouth opening MAE vs ground-truth video (0..1)", "lower"),
    ("mouth_r_vs_annotation", "mouth opening r vs annotation (exact measure)", "higher"),
    ("mouth_mae_vs_annotation", "mouth opening MAE vs annotation", "lower"),
    ("judge_mouth_r_vs_annotation", "judge mouth opening r vs annotation", "higher"),
    ("sync_confidence", "SyncNet-style confidence", "higher"),
    ("sync_offset_mean_abs", "SyncNet-style |offset| (frames)", "lower"),
    ("sync_in_sync_fraction", "clips with |offset| <= 1 frame", "higher"),
    ("listen_head_var_deg2_generated", "listening head variance (deg^2)", "higher"),
    ("listen_head_var_deg2_ground_truth", "  ground truth", "reference"),
    ("listen_head_var_deg2_baseline", "  silent-audio baseline", "reference"),
    ("listen_arm_var_deg2_generated", "listening arm variance (deg^2)", "higher"),
    ("listen_arm_var_deg2_ground_truth", "  ground truth", "reference"),
    ("listen_arm_var_deg2_baseline", "  silent-audio baseline", "reference"),
    ("identity_distance", "identity distance to reference (1 - cos)", "lower"),
    ("identity_distance_ground_truth", "  ground truth", "reference"),
    ("identity_slope_per_minute", "identity distance slope (per minute)", "lower"),
    ("background_error", "background colour error (0-255)", "lower"),
    ("background_slope_per_minute", "background error slope (per minute)", "lower"),
    ("blockiness_8", "blockiness, 8 px grid (1 = none)", "lower"),
    ("blockiness_8_ground_truth", "  ground truth", "reference"),
    ("blockiness_16", "blockiness, 16 px grid (1 = none)", "lower"),
    ("blockiness_16_ground_truth", "  ground truth", "reference"),
    ("fid_proxy", "FID proxy (judge features)", "lower"),
    ("fvd_proxy", "FVD proxy (judge window features)", "lower"),
    ("rtf", "real-time factor", "lower"),
    ("ffd_s", "first-frame delay (s)", "lower"),
)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown_table(summary: dict) -> str:
    """The summary as a markdown table (metric, value, better)."""
    lines = ["| metric | value | better |", "|---|---|---|"]
    for key, label, better in TABLE_ROWS:
        if key in summary:
            lines.append(f"| {label} | {_fmt(summary[key])} | {better} |")
    return "\n".join(lines)


def write_report(result: dict, clips: list[ClipEvaluation], out: str | Path, fps: float = 25.0) -> list[Path]:
    """Write metrics.json, report.md, drift.png and sync_scatter.png into ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "metrics.json", out / "report.md", out / "drift.png", out / "sync_scatter.png"]
    paths[0].write_text(json.dumps(result, indent=1, default=float))
    s = result["summary"]
    md = [f"# Evaluation of {result['generated']}", "",
          f"{s['clips']} clip(s) against the corpus at {result['corpus']}"
          + (f"; silent-audio baseline {result['baseline']}" if result.get("baseline") else "") + ".", "",
          markdown_table(s), "", "Plots: drift.png (identity distance and background error over time), "
          "sync_scatter.png (generated vs ground-truth mouth opening per frame).", "",
          "| clip | mouth r | sync offset | sync conf | identity dist | bg error |", "|---|---|---|---|---|---|"]
    for c in clips:
        m = c.metrics
        sync = m["lip_sync"]["syncnet"] or {}
        md.append(f"| {c.clip_id} | {_fmt(m['lip_sync']['vs_ground_truth_video']['r'])} | "
                  f"{_fmt(sync.get('offset'))} | {_fmt(sync.get('confidence'))} | "
                  f"{_fmt(m['drift']['identity_distance']['mean'])} | {_fmt(m['drift']['background_error']['mean'])} |")
    paths[1].write_text("\n".join(md) + "\n")
    series = []
    for c in clips:
        t = np.arange(len(c.identity_distance)) / fps
        series.append((f"{c.clip_id} id", t, c.identity_distance))
    top = line_plot(series, "identity distance to reference over time", "seconds", "1 - cos")
    bg = line_plot([(f"{c.clip_id} bg", np.arange(len(c.background_error)) / fps, c.background_error) for c in clips],
                   "background colour error over time", "seconds", "MAE 0-255")
    from PIL import Image

    both = Image.new("RGB", (top.width, top.height * 2), "white")
    both.paste(top, (0, 0))
    both.paste(bg, (0, top.height))
    both.save(paths[2], optimize=True)
    gx = np.concatenate([c.mouth_reference for c in clips])
    gy = np.concatenate([c.mouth_generated for c in clips])
    scatter_plot(gx, gy, "mouth opening per frame", "ground-truth video", "generated").save(paths[3], optimize=True)
    return paths
