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
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {text[:40]!r}") from None
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
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {text[:40]!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {text[:40]}")
        return value
    return parse


#: Largest ``--seed`` (torch generators take unsigned 64-bit seeds).
MAX_SEED = 2**64 - 1


def seed_int(name: str = "--seed") -> Callable[[str], int]:
    """An argparse type accepting whole numbers from 0 to :data:`MAX_SEED`; errors name the flag."""
    def parse(text: str) -> int:
        digits = text.strip()
        if digits.isdigit() and len(digits) > 20:  # also keeps int() away from its 4300-digit limit
            raise argparse.ArgumentTypeError(f"{name} must be between 0 and 2**64-1, got {len(digits)} digits")
        try:
            value = int(digits)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text[:40]!r}") from None
        if not 0 <= value <= MAX_SEED:
            raise argparse.ArgumentTypeError(f"{name} must be between 0 and 2**64-1, got {text[:40]}")
        return value
    return parse


def bounded_seconds(name: str, maximum: float) -> Callable[[str], float]:
    """An argparse type accepting finite numbers in (0, ``maximum``]; errors name the flag and the limit."""
    positive = positive_float(name)

    def parse(text: str) -> float:
        value = positive(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{name} must be at most {maximum:g} seconds, got {text[:40]}")
        return value
    return parse
