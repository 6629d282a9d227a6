"""Atomic file outputs: write beside the target, rename into place only when complete.

```python
with atomic_output("out.mp4") as tmp:      # tmp = out.mp4's folder / ".out.mp4.<random>.tmp.mp4"
    write_mp4(tmp, frames, 25)             # any failure, Ctrl-C or SIGTERM: tmp is removed, out.mp4 untouched
# here out.mp4 is the complete new file (os.replace: readers see the old file or the new one, never half)
```

The temporary file lies in the target's folder (so the rename never crosses file systems) and keeps the
target's suffix (so writers that pick a format from the extension, like PyAV, still do). Only a SIGKILL or a
power cut can leave the hidden ``.NAME.*.tmp.SUFFIX`` file behind; the target itself is never half-written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_output", "atomic_write_bytes", "atomic_write_text", "temp_path_for"]


def temp_path_for(target: str | Path) -> Path:
    """A fresh hidden path beside ``target`` with the same suffix (``dir/.name.<hex>.tmp<suffix>``)."""
    t = Path(target)
    return t.with_name(f".{t.name}.{secrets.token_hex(4)}.tmp{t.suffix}")


@contextlib.contextmanager
def atomic_output(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` atomically, on any exception
    (``KeyboardInterrupt`` and ``SystemExit`` included) it is deleted and ``target`` is left as it was."""
    target = Path(target)
    tmp = temp_path_for(target)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp} for {target}")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically (flushed to disk before the rename); returns ``target``."""
    target = Path(target)
    with atomic_output(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return target


def atomic_write_text(target: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``target`` atomically; returns ``target``."""
    return atomic_write_bytes(target, text.encode(encoding))
