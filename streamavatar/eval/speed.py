"""Speed numbers (real-time factor, first-frame delay) read from a benchmark JSON."""

from __future__ import annotations

import json
from pathlib import Path

from streamavatar.errors import UserInputError

#: Keys copied from a ``streamavatar bench stream --json`` result when present.
SPEED_KEYS = ("model", "dtype", "resolution", "fps", "stream_seconds", "rtf", "ffd_s", "chunk_ms", "peak_rss_mb",
              "threads", "timed")


def read_speed(path: str | Path) -> dict:
    """RTF and FFD (+ context) from a JSON file written by ``streamavatar bench stream --json``."""
    p = Path(path)
    if not p.is_file():
        raise UserInputError(f"--bench must be a JSON file from 'streamavatar bench stream --json', got {p}")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise UserInputError(f"--bench file {p} is not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict) or "rtf" not in data or "ffd_s" not in data:
        raise UserInputError(f"--bench file {p} must be a JSON object with 'rtf' and 'ffd_s', got "
                             f"{sorted(data) if isinstance(data, dict) else type(data).__name__}")
    return {k: data[k] for k in SPEED_KEYS if k in data}
