"""Distillation runs on a tiny corpus and a tiny random teacher: ODE init + resume, SiD, export, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from streamavatar.config import ModelConfig
from streamavatar.training.distill import DistillConfig
from streamavatar.training.ode_init import train_ode
from streamavatar.training.sid_train import train_sid
from streamavatar.training.state import load_checkpoint
from tests.training.kill_helpers import kill_9_then_resume, log_steps
from tests.training.teacher_setup import PRESET, build_teacher_setup


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 3-clip corpus, a random tiny VAE and a random small x0 teacher run folder (mel audio)."""
    return build_teacher_setup(tmp_path_factory.mktemp("distill"))


def _cfg(s, out, **over) -> DistillConfig:
    base = dict(teacher=str(s["teacher"]), data=str(s["corpus"]), out=str(out), preset=PRESET, split=s["split"],
                batch=1, pairs=2, pair_batch=2, teacher_steps=3, checkpoint_every=2, feature_cache=str(s["features"]),
                lr=1e-3, fake_updates=1)
    base.update(over)
    return DistillConfig(**base)


def test_ode_run_exports_a_student_folder_and_resume_continues_the_step_counter(setup, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "ode"
    train_ode(_cfg(setup, out, steps=2), progress=False)
    shards = sorted(out.glob("trajectories/*/shard_*.safetensors"))
    assert len(shards) == 1
    mtime = shards[0].stat().st_mtime_ns
    last = train_ode(_cfg(setup, out, steps=3), resume=True, progress=False)
    assert last["step"] == 3 and load_checkpoint(out / "checkpoint.pt")["step"] == 3
    assert log_steps(out) == [1, 2, 3]
    assert shards[0].stat().st_mtime_ns == mtime  # trajectories were reused, not regenerated
    teacher_info = json.loads((setup["teacher"] / "teacher.json").read_text())
    info = json.loads((out / "student.json").read_text())
    assert info["kind"] == "student" and info["train"]["phase"] == "ode" and info["train"]["step"] == 3
    for key in ("model", "projector", "audio", "resolution"):
        assert info[key] == teacher_info[key]
    assert info["train"]["vae"] == teacher_info["train"]["vae"]
    assert Path(info["teacher"]) == setup["teacher"].resolve()
    w_student = load_file(str(out / "student.safetensors"))
    w_teacher = load_file(str(setup["teacher"] / "teacher.safetensors"))
    assert set(w_student) == set(w_teacher)
    assert all(v.dtype == torch.bfloat16 for v in w_student.values())
    assert any(not torch.equal(w_student[k], w_teacher[k]) for k in w_student)  # it trained


def test_sid_run_from_the_ode_run_and_its_resume(setup, tmp_path):
    torch.set_num_threads(1)
    ode = tmp_path / "ode"
    train_ode(_cfg(setup, ode, steps=1), progress=False)
    out = tmp_path / "sid"
    last = train_sid(_cfg(setup, out, phase="sid", init_from=str(ode), steps=1, checkpoint_every=1), progress=False)
    assert last["step"] == 1 and 0 <= last["exit_step"] < 3 and last["window"] in (0, 3)
    for k in ("sid_loss", "fake_loss", "grad_norm", "score_gap"):
        assert torch.isfinite(torch.tensor(last[k])), last
    last = train_sid(_cfg(setup, out, phase="sid", steps=2), resume=True, progress=False)
    assert last["step"] == 2 and log_steps(out) == [1, 2]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 2 and "fake" in state
    info = json.loads((out / "student.json").read_text())
    assert info["kind"] == "student" and info["train"]["phase"] == "sid"


def test_ablation_flags_parse_into_the_stream_switches():
    from streamavatar.cli import build_parser

    base = ["train", "distill", "--teacher", "t", "--data", "d", "--out", "o"]
    for extra, sink, rapr in (([], True, True), (["--sink-only"], True, False), (["--no-sink"], False, True)):
        a = build_parser().parse_args(base + extra)
        assert (a.sink, a.rapr) == (sink, rapr)  # --no-sink also turns RAPR off in _train (rapr and sink)


def test_cli_ablation_flag_reaches_the_exported_student(setup, tmp_path):
    flag, sink, rapr = "--no-sink", False, False
    out = tmp_path / "run"
    r = _cli("--teacher", str(setup["teacher"]), "--data", str(setup["corpus"]), "--out", str(out), "--preset",
             PRESET, "--split", setup["split"], "--feature-cache", str(setup["features"]), "--pairs", "1",
             "--pair-batch", "1", "--teacher-steps", "2", "--steps", "1", "--batch", "1", flag)
    assert r.returncode == 0, r.stderr
    assert "step=1" in r.stdout
    stream = json.loads((out / "student.json").read_text())["model"]["stream"]
    assert stream["reference_sink"] is sink and stream["rapr"] is rapr
    # the exported folder streams like the engine will run it
    from streamavatar.diffusion.chunk_sampler import ChunkSampler
    from streamavatar.training.distill import load_run

    model, projector, info = load_run(out)
    mc = ModelConfig.from_dict(info["model"])
    sampler = ChunkSampler(model, mc.stream)
    state = sampler.start(torch.randn(1, 16, 1, 16, 16))
    chunk = sampler.next_chunk(state, generator=torch.Generator().manual_seed(0))
    assert chunk.shape == (1, 16, 3, 16, 16) and torch.isfinite(chunk).all()


# --- command line: bad input ------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamavatar", "train", "distill", "--threads", "1", *args],
                          capture_output=True, text=True, timeout=120)


def _assert_one_line_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_cli_refuses_a_teacher_of_another_preset(setup, tmp_path):
    r = _cli("--teacher", str(setup["teacher"]), "--data", str(setup["corpus"]), "--out", str(tmp_path / "r"),
             "--preset", "tiny")
    _assert_one_line_error(r, PRESET, "tiny")


def test_cli_refuses_data_without_audio(setup, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(setup["corpus"], corpus)
    clip = (corpus / f"{setup['split']}.txt").read_text().split()[0]
    (corpus / clip / "talk.wav").unlink()
    r = _cli("--teacher", str(setup["teacher"]), "--data", str(corpus), "--out", str(tmp_path / "r"),
             "--preset", PRESET, "--split", setup["split"])
    _assert_one_line_error(r, "no audio", "talk.wav")


def test_cli_refuses_rollouts_shorter_than_the_rapr_layout(setup, tmp_path):
    r = _cli("--teacher", str(setup["teacher"]), "--data", str(setup["corpus"]), "--out", str(tmp_path / "r"),
             "--preset", PRESET, "--phase", "sid", "--init-from", str(setup["teacher"]), "--rollout-chunks", "3")
    _assert_one_line_error(r, "--rollout-chunks 4")


def test_cli_sid_needs_an_init_run_and_teacher_folder_must_exist(setup, tmp_path):
    r = _cli("--teacher", str(setup["teacher"]), "--data", str(setup["corpus"]), "--out", str(tmp_path / "r"),
             "--preset", PRESET, "--phase", "sid")
    _assert_one_line_error(r, "--init-from")
    r = _cli("--teacher", str(tmp_path / "nothing"), "--data", str(setup["corpus"]), "--out", str(tmp_path / "r"))
    _assert_one_line_error(r, "not a teacher or student run")


def test_bad_config_values():
    from streamavatar.errors import UserInputError

    with pytest.raises(UserInputError, match="phase"):
        DistillConfig(teacher="t", data="d", out="o", phase="gan")
    with pytest.raises(UserInputError, match="ema"):
        replace(DistillConfig(teacher="t", data="d", out="o"), ema=1.5)


# --- kill -9 and resume, through the command line ----------------------------------------------------------
def _distill_args(setup, out: Path, *extra: str) -> list[str]:
    return ["--teacher", str(setup["teacher"]), "--data", str(setup["corpus"]), "--out", str(out), "--preset",
            PRESET, "--split", setup["split"], "--feature-cache", str(setup["features"]), "--pairs", "2",
            "--pair-batch", "2", "--teacher-steps", "3", "--batch", "1", "--checkpoint-every", "2", *extra]


DISTILL = ["train", "distill", "--threads", "1"]


def test_ode_run_resumes_after_kill_9(setup, tmp_path):
    kill_9_then_resume([*DISTILL, *_distill_args(setup, tmp_path / "ode")], tmp_path / "ode")


def test_sid_run_resumes_after_kill_9(setup, tmp_path):
    ode = tmp_path / "ode"
    train_ode(_cfg(setup, ode, steps=1), progress=False)
    out = tmp_path / "sid"
    kill_9_then_resume([*DISTILL, *_distill_args(setup, out, "--phase", "sid", "--init-from", str(ode),
                                                 "--fake-updates", "1")], out, at_least=2)
