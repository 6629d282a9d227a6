"""Minimal line and scatter plots drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
W, H = 640, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 36, 50


def _axes(title: str, xlabel: str, ylabel: str, xlim: tuple[float, float], ylim: tuple[float, float]):
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    x0, y0, x1, y1 = LEFT, TOP, W - RIGHT, H - BOTTOM
    d.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
    d.text((W // 2 - 4 * len(title), 10), title, fill=(0, 0, 0), font=font)
    d.text((W // 2 - 3 * len(xlabel), H - 22), xlabel, fill=(0, 0, 0), font=font)
    d.text((6, TOP - 22), ylabel, fill=(0, 0, 0), font=font)
    for k in range(5):
        fx = xlim[0] + (xlim[1] - xlim[0]) * k / 4
        fy = ylim[0] + (ylim[1] - ylim[0]) * k / 4
        px = x0 + (x1 - x0) * k / 4
        py = y1 - (y1 - y0) * k / 4
        d.line([(px, y1), (px, y1 + 4)], fill=(0, 0, 0))
        d.text((px - 12, y1 + 6), f"{fx:.3g}", fill=(0, 0, 0), font=font)
        d.line([(x0 - 4, py), (x0, py)], fill=(0, 0, 0))
        d.text((6, py - 6), f"{fy:.3g}", fill=(0, 0, 0), font=font)

    def to_px(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sx = (x1 - x0) / max(xlim[1] - xlim[0], 1e-12)
        sy = (y1 - y0) / max(ylim[1] - ylim[0], 1e-12)
        return x0 + (np.asarray(x) - xlim[0]) * sx, y1 - (np.asarray(y) - ylim[0]) * sy

    return img, d, to_px, font


def _limits(values: Sequence[np.ndarray]) -> tuple[float, float]:
    v = np.concatenate([np.asarray(a, np.float64).ravel() for a in values if len(a)]) if values else np.zeros(1)
    v = v[np.isfinite(v)]
    lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def line_plot(series: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str, xlabel: str,
              ylabel: str) -> Image.Image:
    """Lines ``(label, x, y)`` on shared axes, with a legend (first 10 labels)."""
    xlim = _limits([s[1] for s in series])
    ylim = _limits([s[2] for s in series])
    img, d, to_px, font = _axes(title, xlabel, ylabel, xlim, ylim)
    for k, (label, x, y) in enumerate(series):
        px, py = to_px(x, y)
        col = PALETTE[k % len(PALETTE)]
        if len(px) > 1:
            d.line(list(zip(px.tolist(), py.tolist(), strict=True)), fill=col, width=2)
        if k < 10:
            d.text((W - RIGHT - 120, TOP + 4 + 12 * k), label[:18], fill=col, font=font)
    return img


def scatter_plot(x: np.ndarray, y: np.ndarray, title: str, xlabel: str, ylabel: str,
                 diagonal: bool = True) -> Image.Image:
    """Points ``(x, y)``; with ``diagonal`` the line y = x is drawn for reference."""
    lim = _limits([x, y])
    img, d, to_px, _ = _axes(title, xlabel, ylabel, lim, lim)
    if diagonal:
        px, py = to_px(np.array(lim), np.array(lim))
        d.line([(px[0], py[0]), (px[1], py[1])], fill=(180, 180, 180), width=1)
    px, py = to_px(x, y)
    for a, b in zip(px.tolist(), py.tolist(), strict=True):
        d.ellipse([a - 1.5, b - 1.5, a + 1.5, b + 1.5], fill=PALETTE[0])
    return img
