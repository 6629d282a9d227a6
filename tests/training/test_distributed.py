"""Teacher training under torchrun (gloo, CPU): 2 ranks = 1 rank with the same global batch, gradient
accumulation = one big batch, activation checkpointing = none, and a SIGKILLed rank that torchrun restarts
resumes with no lost or repeated step (then the checkpoint resumes in one process)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from streamavatar.data.synthetic import SynthConfig, build_corpus
from streamavatar.errors import UserInputError
from streamavatar.models.vae import VideoVAE, vae_preset
from streamavatar.training.distributed import TEST_KILL_AT_STEP_ENV, TEST_KILL_RANK_ENV
from streamavatar.training.state import load_checkpoint
from streamavatar.training.teacher import TeacherTrainConfig, load_training_inputs, train_teacher
from tests.training.kill_helpers import log_steps

TORCHRUN = Path(sys.executable).with_name("torchrun")
pytestmark = pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed next to python")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A two-clip corpus, a tiny random VAE and the encoded feature cache every run below shares."""
    root = tmp_path_factory.mktemp("distributed")
    corpus = root / "corpus"
    build_corpus(corpus, SynthConfig(clips=2, seconds=2.0, seed=11, clips_per_identity=1, workers=1), progress=False)
    split = next(s for s in ("train", "val", "test") if (corpus / f"{s}.txt").read_text().strip())
    torch.manual_seed(0)
    VideoVAE(vae_preset("tiny")).save_pretrained(root / "vae")
    base = TeacherTrainConfig(data=str(corpus), out=str(root / "unused"), preset="tiny", frames=3, batch=2,
                              vae=str(root / "vae"), audio_backend="mel", split=split,
                              feature_cache=str(root / "features"), autocast="fp32", checkpoint_every=2, steps=3,
                              grad_clip=0.2)  # small enough that clipping acts on these steps
    _, _, windows = load_training_inputs(base, split, progress=False)
    assert len(windows) >= 2
    return base


def _flags(cfg: TeacherTrainConfig, out: Path, steps: int) -> list[str]:
    return ["train", "teacher", "--data", cfg.data, "--out", str(out), "--preset", cfg.preset, "--frames",
            str(cfg.frames), "--batch", str(cfg.batch), "--vae", cfg.vae, "--audio-backend", cfg.audio_backend,
            "--split", cfg.split, "--feature-cache", cfg.feature_cache, "--autocast", cfg.autocast,
            "--checkpoint-every", str(cfg.checkpoint_every), "--grad-clip", str(cfg.grad_clip), "--steps", str(steps),
            "--threads", "1"]


def _torchrun(args: list[str], env_extra: dict | None = None, restarts: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    cmd = [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "--max-restarts", str(restarts),
           "--monitor-interval", "0.2", "-m", "streamavatar", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the workers too: a rank stuck in a collective ignores SIGTERM
        out, err = proc.communicate()
        pytest.fail(f"torchrun timed out: {err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run / "checkpoint.pt")
    out = {f"model.{k}": v for k, v in state["model"].items()}
    out.update({f"projector.{k}": v for k, v in state["projector"].items()})
    out.update({f"ema.{k}": v for k, v in state["ema_model"].items()})
    for i, s in state["optimizer"]["state"].items():
        out.update({f"adam.{i}.{k}": v for k, v in s.items()})
    return out


def _assert_same(a: dict, b: dict, atol: float = 2e-6) -> None:
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst <= atol, worst


def _losses(run: Path) -> list[float]:
    """Logged loss and pre-clip gradient norm of every step (the norm catches a wrongly scaled gradient that
    AdamW's scale invariance would hide in the weights)."""
    rows = (run / "train_log.csv").read_text().splitlines()
    cols = [rows[0].split(",").index(c) for c in ("loss", "grad_norm")]
    return [float(r.split(",")[c]) for r in rows[1:] for c in cols]


@pytest.mark.slow
def test_two_ranks_equal_one_rank_with_the_same_global_batch(setup, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    t0 = time.monotonic()
    train_teacher(replace(setup, out=str(one)), progress=False)
    t1 = time.monotonic()
    r = _torchrun(_flags(setup, two, steps=3))
    t2 = time.monotonic()
    assert r.returncode == 0, r.stderr[-3000:]
    print(f"1 process: {t1 - t0:.1f} s in-process; 2 processes: {t2 - t1:.1f} s under torchrun")
    assert r.stdout.count("step=3") == 1  # only rank 0 reports
    assert log_steps(two) == [1, 2, 3]
    assert _losses(two) == pytest.approx(_losses(one), rel=1e-5)
    _assert_same(_weights(two), _weights(one))
    state = load_checkpoint(two / "checkpoint.pt")
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    assert (two / "teacher.safetensors").is_file()


def test_grad_accum_and_activation_checkpointing_equal_one_batch(setup, tmp_path):
    runs = {"plain": {}, "accum": {"grad_accum": 2}, "accum_ckpt": {"grad_accum": 2, "activation_checkpointing": True}}
    weights = {}
    for name, over in runs.items():
        train_teacher(replace(setup, out=str(tmp_path / name), steps=2, **over), progress=False)
        weights[name] = _weights(tmp_path / name)
    _assert_same(weights["accum"], weights["plain"])
    _assert_same(weights["accum_ckpt"], weights["plain"])


@pytest.mark.slow
def test_a_killed_rank_resumes_with_no_lost_or_repeated_step(setup, tmp_path):
    """Rank 1 SIGKILLs itself after step 3 (checkpoint at 2); torchrun restarts the group, which resumes from
    step 2 by itself. Then one process resumes the 2-rank checkpoint to step 5 and matches a 5-step run."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    train_teacher(replace(setup, out=str(ref), steps=5), progress=False)
    # with activation checkpointing under FSDP as well (the reference runs without: it must not change a thing)
    r = _torchrun([*_flags(setup, run, steps=4), "--activation-checkpointing"],
                  {TEST_KILL_AT_STEP_ENV: "3", TEST_KILL_RANK_ENV: "1"}, restarts=1)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "exitcode: -9" in r.stderr  # the fault did happen (torchrun saw a SIGKILLed worker)
    assert log_steps(run) == [1, 2, 3, 4]
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 4 and state["batches_drawn"] == 4
    assert float(max(s["step"] for s in state["optimizer"]["state"].values())) == 4
    train_teacher(replace(setup, out=str(run), steps=5), resume=True, progress=False)
    assert log_steps(run) == [1, 2, 3, 4, 5]
    assert _losses(run) == pytest.approx(_losses(ref), rel=1e-5)
    _assert_same(_weights(run), _weights(ref))


def test_batch_must_split_over_ranks_and_micro_batches(setup, tmp_path):
    with pytest.raises(UserInputError, match="does not split"):
        train_teacher(replace(setup, out=str(tmp_path / "a"), batch=3, grad_accum=2), progress=False)
    shutil.rmtree(tmp_path / "a", ignore_errors=True)


def test_micro_batches_partition_the_global_batch_and_batches_follow_the_step():
    from streamavatar.training.distributed import DistEnv, GlobalBatches, shard_slices

    for world, accum in ((1, 1), (2, 1), (2, 2), (4, 3)):
        pieces = [s for r in range(world) for s in shard_slices(24, DistEnv(world=world, rank=r), accum)]
        covered = sorted(i for s in pieces for i in range(24)[s])
        assert covered == list(range(24)) and len(pieces) == world * accum
    with pytest.raises(UserInputError, match="multiple of 6"):
        shard_slices(8, DistEnv(world=2, rank=0), 3)
    a, b = GlobalBatches(10, 3, seed=4), GlobalBatches(10, 3, seed=4)
    first_epoch = torch.cat([a(k) for k in range(3)])  # 10 // 3 batches, the last item dropped
    assert len(set(first_epoch.tolist())) == 9
    assert torch.equal(a(7), b(7)) and torch.equal(b(1), a(1))  # a function of the index, in any order
    assert not torch.equal(torch.cat([a(k) for k in range(3, 6)]), first_epoch)  # a new permutation per epoch
    with pytest.raises(UserInputError, match="larger than"):
        GlobalBatches(2, 3, seed=0)
