"""Chart ticks are round numbers inside the axis range (labels must not misstate values)."""

from __future__ import annotations

import math

import pytest

from streamavatar.eval.curve_png import _ticks, line_chart


@pytest.mark.parametrize("lo,hi", [(-0.04, 0.8), (40, 162), (29.5, 32.5), (0.0, 1e-3), (-3.0, 7.0)])
def test_ticks_are_round_and_inside(lo, hi):
    ticks = _ticks(lo, hi)
    assert 2 <= len(ticks) <= 8
    assert all(lo - 1e-12 <= t <= hi + 1e-12 for t in ticks)
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6
    assert all(abs(t / step - round(t / step)) < 1e-6 for t in ticks)


def test_line_chart_writes_a_png(tmp_path):
    line_chart({"a": [(0, 0.1), (1, 0.7)]}, tmp_path / "c.png", "t", "x", "y", hline=(0.6, "goal"))
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
