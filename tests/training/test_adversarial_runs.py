"""Stage 2 runs on a tiny corpus with a tiny random teacher: D_CA and plain, the SiD term, resume, kill -9, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from streamavatar.models.avatar_model import AvatarModel
from streamavatar.training.adversarial_train import AdversarialConfig, train_adversarial
from streamavatar.training.state import load_checkpoint
from tests.training.kill_helpers import kill_9_then_resume, log_steps
from tests.training.teacher_setup import PRESET, build_teacher_setup


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 3-clip corpus, a random tiny VAE and a random small x0 teacher run folder (mel audio)."""
    return build_teacher_setup(tmp_path_factory.mktemp("adversarial"), num_layers=3)


def _cfg(s, out, **over) -> AdversarialConfig:
    # the teacher folder doubles as the student to refine (a run folder of the same preset)
    base = dict(student=str(s["teacher"]), teacher=str(s["teacher"]), data=str(s["corpus"]), out=str(out),
                preset=PRESET, split=s["split"], batch=1, rollout_chunks=4, checkpoint_every=1, lr=1e-3, d_lr=1e-3,
                feature_cache=str(s["features"]))
    base.update(over)
    return AdversarialConfig(**base)


def test_dca_run_trains_both_networks_exports_a_student_and_resumes(setup, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "run"
    last = train_adversarial(_cfg(setup, out, steps=1), progress=False)
    assert last["step"] == 1 and 0 <= last["exit_step"] < 3
    for k in ("g_loss", "d_loss", "r1", "r2", "d_real", "d_fake", "c_real", "c_fake", "grad_norm", "d_grad_norm"):
        assert torch.isfinite(torch.tensor(last[k])), (k, last)
    assert last["r1"] > 0 and last["r2"] > 0
    state = load_checkpoint(out / "checkpoint.pt")
    assert {"model", "projector", "disc", "optimizer", "disc_optimizer", "ema_model"} <= set(state)
    assert "fake" not in state
    assert any(k.startswith("global_head") for k in state["disc"])
    teacher_sd = AvatarModel.from_pretrained(setup["teacher"]).dit.state_dict()
    for net in ("model", "disc"):  # both networks trained away from the teacher's weights
        prefix = "" if net == "model" else "backbone."
        assert any(not torch.equal(state[net][prefix + k], teacher_sd[k]) for k in teacher_sd), net
    last = train_adversarial(_cfg(setup, out, steps=2), resume=True, progress=False)
    assert last["step"] == 2 and log_steps(out) == [1, 2]
    info = json.loads((out / "student.json").read_text())
    assert info["kind"] == "student" and info["train"]["phase"] == "adversarial" and info["train"]["step"] == 2
    assert info["train"]["student"] == str(setup["teacher"]) and info["model"]["stream"]["rapr"] is True
    assert (out / "student.safetensors").is_file()


def test_plain_discriminator_and_the_sid_term(setup, tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "plain"
    last = train_adversarial(_cfg(setup, out, steps=1, plain_discriminator=True, sid_weight=0.5), progress=False)
    assert "c_real" not in last and torch.isfinite(torch.tensor(last["sid_loss"]))
    assert torch.isfinite(torch.tensor(last["fake_loss"]))
    state = load_checkpoint(out / "checkpoint.pt")
    assert not any(k.startswith(("global_head", "consistency_attn")) for k in state["disc"])
    assert "fake" in state and "fake_optimizer" in state


# --- command line ------------------------------------------------------------------------------------------
def _args(setup, out: Path, *extra: str) -> list[str]:
    return ["train", "adversarial", "--threads", "1", "--student", str(setup["teacher"]), "--teacher",
            str(setup["teacher"]), "--data", str(setup["corpus"]), "--out", str(out), "--preset", PRESET,
            "--split", setup["split"], "--feature-cache", str(setup["features"]), "--batch", "1",
            "--rollout-chunks", "4", "--checkpoint-every", "1", *extra]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamavatar", *args], capture_output=True, text=True, timeout=300)


def test_cli_plain_run_writes_its_flag(setup, tmp_path):
    out = tmp_path / "cli"
    r = _cli(*_args(setup, out, "--steps", "1", "--plain-discriminator"))
    assert r.returncode == 0, r.stderr
    assert "step=1" in r.stdout
    assert json.loads((out / "student.json").read_text())["train"]["plain_discriminator"] is True


def _assert_one_line_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_cli_bad_input(setup, tmp_path):
    r = _cli(*_args(setup, tmp_path / "a", "--rollout-chunks", "3"))
    _assert_one_line_error(r, "--rollout-chunks 4")
    r = _cli(*_args(setup, tmp_path / "b", "--student", str(tmp_path / "nothing")))
    _assert_one_line_error(r, "not a teacher or student run")
    r = _cli(*_args(setup, tmp_path / "c", "--resume"))
    _assert_one_line_error(r, "no checkpoint")
    r = _cli(*_args(setup, tmp_path / "d", "--preset", "tiny"))
    _assert_one_line_error(r, "tiny", PRESET)


def test_adversarial_run_resumes_after_kill_9(setup, tmp_path):
    out = tmp_path / "kill"
    kill_9_then_resume(_args(setup, out), out, at_least=2)
