"""Find a Chromium for the browser test, installing Debian's package when it is missing and we may.

The browser test is not optional: with no Chromium it fails with what to do instead of being skipped. Order:
``$STREAMAVATAR_CHROMIUM``; ``chromium`` / ``chromium-browser`` / ``google-chrome`` on PATH; the fixed Debian
path; then, as root on a Debian/Ubuntu machine, ``apt-get install chromium`` (one minute, once per machine).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

DEBIAN_PATH = "/usr/bin/chromium"
HOW = ("the browser test needs Chromium: install it ('sudo apt-get install chromium' on Debian/Ubuntu) or point "
       "STREAMAVATAR_CHROMIUM at a Chromium/Chrome executable")


def _found() -> str | None:
    env = os.environ.get("STREAMAVATAR_CHROMIUM")
    if env:
        return env if os.path.exists(env) else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return DEBIAN_PATH if os.path.exists(DEBIAN_PATH) else None


def find_or_install_chromium() -> str:
    """A Chromium executable; raises RuntimeError with instructions when none can be had."""
    path = _found()
    if path:
        return path
    if os.environ.get("STREAMAVATAR_CHROMIUM"):
        raise RuntimeError(f"STREAMAVATAR_CHROMIUM={os.environ['STREAMAVATAR_CHROMIUM']} does not exist; {HOW}")
    apt = shutil.which("apt-get") or ("/usr/bin/apt-get" if os.path.exists("/usr/bin/apt-get") else None)
    if apt is None or os.geteuid() != 0:
        raise RuntimeError(HOW)
    print("browser test: installing Debian's chromium (apt-get, once per machine)", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "chromium"]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
            raise RuntimeError(f"{' '.join(cmd)} failed ({tail[0]}); {HOW}")
    path = _found()
    if not path:
        raise RuntimeError(f"apt-get installed chromium but no executable was found; {HOW}")
    return path
