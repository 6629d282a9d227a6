"""Run folders written before the one-house refactor (commit 8d0d95e) still load and resume.

``legacy_runs/`` holds a teacher, an ODE and a SiD run made by the old code (``make_legacy_runs.py``, which
also recorded what the old code logged when it resumed each of them). Here the new code resumes copies of
them: the step counter continues, the CSV log is appended, and — when the test corpus is byte-identical to
the one the fixture was made from — every logged loss equals the old code's continuation exactly.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.legacy_runs.make_legacy_runs import PRESET, RUNS, build_inputs, corpus_digest, register_small_model

FIXTURE = Path(__file__).with_name("legacy_runs")
PATHS = json.loads((FIXTURE / "paths.json").read_text())


def _relocate(obj, old: str, new: str):
    if isinstance(obj, str):
        return obj.replace(old, new)
    if isinstance(obj, dict):
        return {k: _relocate(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_relocate(v, old, new) for v in obj]
    return obj


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    """The fixture runs copied into a fresh root with the corpus and VAE re-made, their paths relocated."""
    undo = register_small_model()
    root = tmp_path_factory.mktemp("legacy")
    corpus, _, split = build_inputs(root)
    old = PATHS["root"]
    for run in RUNS:
        shutil.copytree(FIXTURE / run, root / run)
        ckpt = root / run / "checkpoint.pt"
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        state["config"] = _relocate(state["config"], old, str(root))
        torch.save(state, ckpt)
        for js in (root / run).glob("*.json"):
            js.write_text(json.dumps(_relocate(json.loads(js.read_text()), old, str(root)), indent=1))
    exact = corpus_digest(corpus) == PATHS["corpus_digest"]
    yield {"root": root, "corpus": corpus, "split": split, "exact": exact}
    undo()


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def _check_continuation(run_dir: Path, run: str, exact: bool) -> None:
    expected = _rows("\n".join([PATHS["continuation"][run]["header"], *PATHS["continuation"][run]["rows"]]))
    log = _rows((run_dir / "train_log.csv").read_text())
    before = _rows((FIXTURE / run / "train_log.csv").read_text())
    assert [int(r["step"]) for r in log] == list(range(1, len(before) + len(expected) + 1))
    got = log[len(before):]
    loss_keys = [k for k in expected[0] if k.endswith("loss")]
    for g, e in zip(got, expected, strict=True):
        for k in loss_keys:
            assert np.isfinite(float(g[k]))
            if exact:
                assert float(g[k]) == pytest.approx(float(e[k]), rel=1e-5, abs=1e-9), (run, k, g, e)


def test_legacy_runs_load_through_the_model_bundle(legacy):
    from streamavatar.models.avatar_model import AvatarModel
    from streamavatar.streaming.pipeline import load

    for run in RUNS:
        bundle = AvatarModel.from_pretrained(legacy["root"] / run)
        assert bundle.config.name == PRESET and bundle.kind == ("teacher" if run == "teacher" else "student")
    pipe = load(str(legacy["root"] / "ode"), resolution=64, threads=1, warmup=False)
    chunk = pipe.session(np.zeros((64, 64, 3), np.uint8)).step()
    assert chunk.frames.shape == (12, 64, 64, 3)


def test_legacy_ode_and_sid_runs_resume_where_they_stopped(legacy):
    from streamavatar.training.distill import DistillConfig
    from streamavatar.training.ode_init import train_ode
    from streamavatar.training.sid_train import train_sid

    torch.set_num_threads(1)
    root = legacy["root"]
    last = train_ode(DistillConfig(teacher=str(root / "teacher"), data=str(legacy["corpus"]), out=str(root / "ode"),
                                   steps=5), resume=True, progress=False)
    assert last["step"] == 5
    _check_continuation(root / "ode", "ode", legacy["exact"])
    last = train_sid(DistillConfig(teacher=str(root / "teacher"), data=str(legacy["corpus"]), out=str(root / "sid"),
                                   phase="sid", steps=3), resume=True, progress=False)
    assert last["step"] == 3
    _check_continuation(root / "sid", "sid", legacy["exact"])


def test_legacy_teacher_run_resumes_where_it_stopped(legacy):
    from streamavatar.training.teacher import TeacherTrainConfig, train_teacher

    torch.set_num_threads(1)
    root = legacy["root"]
    last = train_teacher(TeacherTrainConfig(data=str(legacy["corpus"]), out=str(root / "teacher"), preset=PRESET,
                                            steps=5), resume=True, progress=False)
    assert last["step"] == 5
    _check_continuation(root / "teacher", "teacher", legacy["exact"])
