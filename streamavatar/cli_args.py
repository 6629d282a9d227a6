"""Argument types shared by the CLI modules (argparse turns their errors into exit status 2, one line)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def positive_int(name: str) -> Callable[[str], int]:
    """An argparse type accepting integers > 0; errors name the flag."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {value}")
        return value
    return parse


def positive_float(name: str) -> Callable[[str], float]:
    """An argparse type accepting finite numbers > 0; errors name the flag."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {text}")
        return value
    return parse
