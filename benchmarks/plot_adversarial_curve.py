"""Stage 2 training curves from a run's ``train_log.csv`` (``streamavatar train adversarial``).

    PYTHONPATH=. python benchmarks/plot_adversarial_curve.py --run /work/runs/stage2_dca --out docs --every 10

writes ``OUT/stage2_curve_losses.png`` (generator and discriminator relativistic losses, running mean over
``--smooth`` steps; the line marks an undecided discriminator) and ``OUT/stage2_curve_logits.png`` (mean
real/fake local logits and consistency logits), and prints one markdown row per ``--every`` steps (their
means) for the docs.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from streamavatar.eval.curve_png import line_chart

COLUMNS = ("g_adv", "d_adv", "r1", "r2", "d_real", "d_fake", "c_real", "c_fake", "grad_norm", "d_grad_norm")


def read_log(run: Path) -> list[dict[str, float]]:
    """The logged rows with their numeric columns (empty cells dropped)."""
    rows = []
    with open(run / "train_log.csv", newline="") as f:
        for r in csv.DictReader(f):
            rows.append({k: float(v) for k, v in r.items() if v not in ("", None)})
    return rows


def running_mean(rows: list[dict[str, float]], key: str, window: int) -> list[tuple[float, float]]:
    """``(step, mean of key over the last window rows)`` for the rows that have ``key``."""
    pts, vals = [], []
    for r in rows:
        if key in r:
            vals.append(r[key])
            tail = vals[-window:]
            pts.append((r["step"], sum(tail) / len(tail)))
    return pts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--smooth", type=int, default=10)
    ap.add_argument("--every", type=int, default=10)
    args = ap.parse_args()
    rows = read_log(args.run)
    if not rows:
        raise SystemExit(f"{args.run}/train_log.csv has no rows")
    args.out.mkdir(parents=True, exist_ok=True)
    # an undecided discriminator gives softplus(0) = log 2 per head (local + global for D_CA, weight 1)
    undecided = math.log(2) * (2 if any("c_real" in r for r in rows) else 1)
    line_chart({k: running_mean(rows, k, args.smooth) for k in ("g_adv", "d_adv")},
               args.out / "stage2_curve_losses.png", f"Stage 2 relativistic losses (mean of {args.smooth} steps)",
               "step", "loss", hline=(undecided, "D undecided"))
    logits = {k: running_mean(rows, k, args.smooth) for k in ("d_real", "d_fake", "c_real", "c_fake")}
    line_chart({k: v for k, v in logits.items() if v}, args.out / "stage2_curve_logits.png",
               f"Stage 2 discriminator logits (mean of {args.smooth} steps)", "step", "logit")
    cols = [c for c in COLUMNS if any(c in r for r in rows)]
    print("| steps | minutes | " + " | ".join(cols) + " |")
    print("|" + " --- |" * (len(cols) + 2))
    for start in range(0, len(rows), args.every):
        chunk = rows[start:start + args.every]
        means = [sum(r[c] for r in chunk if c in r) / max(1, sum(c in r for r in chunk)) for c in cols]
        print(f"| {int(chunk[0]['step'])}–{int(chunk[-1]['step'])} | {chunk[-1]['minutes']:.1f} | "
              + " | ".join(f"{v:.4g}" for v in means) + " |")


if __name__ == "__main__":
    main()
