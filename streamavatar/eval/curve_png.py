"""Line charts as PNG with Pillow only (matplotlib is not a dependency)."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75)]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (multiples of 1, 2 or 5 × 10^k) inside ``[lo, hi]``."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw / 1.5)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def line_chart(series: dict[str, list[tuple[float, float]]], path: str | Path, title: str, xlabel: str,
               ylabel: str, size: tuple[int, int] = (720, 420), hline: tuple[float, str] | None = None) -> None:
    """Draw named ``(x, y)`` series on shared axes and save a PNG; ``hline`` marks a goal value."""
    w, h = size
    left, right, top, bottom = 70, 20, 40, 55
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts] + ([hline[0]] if hline else [])
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad

    def px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (w - left - right), top + (y1 - y) / (y1 - y0) * (h - top - bottom))

    d.rectangle([left, top, w - right, h - bottom], outline=(0, 0, 0))
    yticks = _ticks(y0, y1)
    step = yticks[1] - yticks[0] if len(yticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    for t in yticks:
        _, yy = px(x0, t)
        d.line([left - 4, yy, left, yy], fill=(0, 0, 0))
        d.line([left, yy, w - right, yy], fill=(230, 230, 230))
        d.text((5, yy - 6), f"{t:.{decimals}f}", fill=(0, 0, 0))
    for t in _ticks(x0, x1):
        xx, _ = px(t, y0)
        d.line([xx, h - bottom, xx, h - bottom + 4], fill=(0, 0, 0))
        d.text((xx - 10, h - bottom + 8), f"{t:.0f}", fill=(0, 0, 0))
    if hline:
        _, yy = px(x0, hline[0])
        d.line([left, yy, w - right, yy], fill=(120, 120, 120), width=1)
        d.text((w - right - 120, yy - 14), hline[1], fill=(90, 90, 90))
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        if len(pts) > 1:
            d.line([px(x, y) for x, y in pts], fill=colour, width=2)
        for x, y in pts:
            cx, cy = px(x, y)
            d.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=colour)
        d.text((left + 10, top + 8 + 14 * i), name, fill=colour)
    d.text((left, 12), title, fill=(0, 0, 0))
    d.text(((w - len(xlabel) * 6) / 2, h - 22), xlabel, fill=(0, 0, 0))
    d.text((5, top - 28), ylabel, fill=(0, 0, 0))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
