"""``kill -9`` a training command mid-run, resume it, and check that it continued from its checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from streamavatar.training.state import load_checkpoint


def _adam_steps(state: dict) -> float:
    return float(max(s["step"] for s in state["optimizer"]["state"].values()))


def log_steps(run: Path) -> list[int]:
    return [int(r.split(",")[0]) for r in (run / "train_log.csv").read_text().splitlines()[1:]]


def kill_9_then_resume(args: list[str], out: Path, at_least: int = 4, timeout: float = 300) -> int:
    """Start ``streamavatar ARGS --steps 1000``, SIGKILL it once a checkpoint at step >= ``at_least`` is on disk,
    resume it for two more steps. The step counter, the optimiser's step count and the log (rows past the
    checkpoint dropped) continue from the checkpoint, and every logged loss is finite. Returns the checkpoint
    step the kill left."""
    cmd = [sys.executable, "-m", "streamavatar", *args]
    proc = subprocess.Popen([*cmd, "--steps", "1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = out / "checkpoint.pt"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if ckpt.exists() and load_checkpoint(ckpt)["step"] >= at_least:
            break
        time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = load_checkpoint(ckpt)
    step0 = saved["step"]
    assert step0 >= at_least and _adam_steps(saved) == step0
    r = subprocess.run([*cmd, "--steps", str(step0 + 2), "--resume"], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr
    resumed = load_checkpoint(ckpt)
    assert resumed["step"] == step0 + 2 and _adam_steps(resumed) == step0 + 2
    assert log_steps(out) == list(range(1, step0 + 3))
    rows = (out / "train_log.csv").read_text().splitlines()
    header = rows[0].split(",")
    loss_col = header.index(next(c for c in ("g_loss", "sid_loss", "loss") if c in header))
    assert all(np.isfinite(float(row.split(",")[loss_col])) for row in rows[1:])
    return step0
