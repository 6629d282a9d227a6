"""Learning curve of a VAE run as a PNG: batch PSNR (smoothed) and validation PSNR against training minutes.

    PYTHONPATH=. python benchmarks/plot_vae_curve.py RUN_DIR docs/vae_curve.png
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from streamavatar.eval.curve_png import line_chart


def main(run: str, out: str) -> None:
    train = list(csv.DictReader((Path(run) / "train.csv").open()))
    evals = list(csv.DictReader((Path(run) / "eval.csv").open()))
    pts = [(float(r["train_minutes"]), float(r["batch_psnr_db"])) for r in train]
    k = 10  # moving average over 10 log rows (100 steps)
    smooth = [(pts[i][0], sum(y for _, y in pts[max(0, i - k + 1):i + 1]) / len(pts[max(0, i - k + 1):i + 1]))
              for i in range(len(pts))]
    val = [(float(r["train_minutes"]), float(r["val_psnr_db"])) for r in evals]
    line_chart({"train batch PSNR (64x64 crops, moving avg)": smooth,
                "validation PSNR (4 held-out clips, 49 frames, streaming decode)": val},
               out, title="tiny VAE training (PSNR, dB)", xlabel="training minutes", ylabel="PSNR dB",
               hline=(30.0, "goal 30 dB"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
